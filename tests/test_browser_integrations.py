"""A Lightning run, a Hugging Face run (crashed, without `with`) and an imported TensorBoard run in a real
headless Chromium: Home, Live, Collapse and Compare render without an error; Live charts each run's loss and
learning rate with no configuration, its metric picker adds a metric and keeps it in the URL; Home and Live
show each status and the crash's error text."""

from __future__ import annotations

import pytest
from browser import assert_no_error, browser_page, screenshot, streamlit_server, visit  # noqa: F401

pytest.importorskip("lightning.pytorch", reason="lightning is not installed (requirements-dev.txt pins it)")
pytest.importorskip("transformers", reason="transformers is not installed (requirements-dev.txt)")
pytest.importorskip("tensorboard", reason="tensorboard is not installed (requirements-dev.txt pins it)")

pytestmark = pytest.mark.browser
EXPECTED_ALERTS = ("trouble since step", "collapse", "Collapse", "NaN loss")
PANELS_JS = (
    "() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(p => (p.data || [])"
    ".map(t => (t.meta && t.meta.panel || '') + ' | ' + t.name))"
)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    import test_integrations_hf as hf_test
    import test_integrations_lightning as pl_test
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from diagnostics.work import worker
    from integrations.tensorboard_import import import_logdir

    tmp = tmp_path_factory.mktemp("integrations")
    pl_test._fit(tmp, pl_test.TinySimCLR(), steps=12, every=4)  # -> runs/lightning-simclr, finished
    with pytest.raises(RuntimeError):
        hf_test._train(tmp, hf_test.TinySimCSE(fail_at_call=6), steps=10, every=2)  # -> runs/hf-simcse, crashed
    g = torch.Generator().manual_seed(0)
    with SummaryWriter(str(tmp / "tb" / "simclr")) as w:
        for step in range(20):
            w.add_scalar("Loss/train", 2.0 / (step + 1), step)
            w.add_scalar("learning_rate", 0.1 * 0.9**step, step)
            w.add_scalar("accuracy", step / 20, step)
        for step in (0, 19):
            z = torch.randn((60, 6), generator=g)
            w.add_embedding(z, metadata=[i % 3 for i in range(60)], tag="probe", global_step=step)
            w.add_embedding(z + 0.1 * torch.randn((60, 6), generator=g), tag="probe/positives", global_step=step)
        w.add_hparams({"tau": 0.1}, {}, run_name=".")
    with SummaryWriter(str(tmp / "tb" / "plain")) as w:  # no positives: NaN alignment cells on Home
        w.add_scalar("loss", 1.0, 0)
        w.add_embedding(torch.randn((30, 4), generator=g), global_step=0)
    import_logdir(str(tmp / "tb"), str(tmp / "runs"))
    worker.watch(str(tmp / "runs"), once=True)
    return tmp / "runs"


RUNS = ("lightning-simclr", "hf-simcse", "tb-simclr")


def test_integration_runs_on_home_live_collapse_and_compare(runs_root, browser_page):
    page = browser_page
    with streamlit_server(runs_root) as url:
        visit(page, url, "")
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
        assert_no_error(page, expected=EXPECTED_ALERTS)
        page.get_by_placeholder("words in name, status, verdict, notes, config").fill("tb")
        page.keyboard.press("Enter")
        page.wait_for_timeout(1500)
        assert_no_error(page, expected=EXPECTED_ALERTS)  # search over an imported run's NaN cells
        screenshot(page, "integrations-home")

        picked = "&".join(f"runs={n}" for n in RUNS)
        visit(page, url, f"live?{picked}&live_paused=true")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert_no_error(page, expected=EXPECTED_ALERTS)
        captions = " ".join(page.locator('[data-testid="stCaptionContainer"]').all_inner_texts())
        assert "lightning-simclr: step 12" in captions and "finished" in captions
        assert "crashed" in captions and "NaN loss at call 6" in captions  # the crash's text
        traces = page.evaluate(PANELS_JS)
        for panel in ("Losses", "Learning rate"):
            drawn = [t for t in traces if t.startswith(panel)]
            for run in RUNS:  # every run's loss and lr, from its own names (loss/contrastive, loss, Loss/train)
                assert any(run in t for t in drawn), (panel, run, drawn)
        screenshot(page, "integrations-live")

        visit(page, url, f"live?{picked}&live_paused=true&live_metrics=accuracy")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert_no_error(page, expected=EXPECTED_ALERTS)
        assert any(t.startswith("accuracy") for t in page.evaluate(PANELS_JS))  # the picked metric, from the URL
        assert "live_metrics=accuracy" in page.url
        visit(page, url, "live?runs=lightning-simclr&live_paused=true&live_metrics=accuracy")  # a run without it
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert_no_error(page, expected=EXPECTED_ALERTS)

        for path, title in (("collapse", "Collapse"), ("compare", "Compare runs")):
            visit(page, url, f"{path}?{picked}")
            assert_no_error(page, expected=EXPECTED_ALERTS)
            assert page.locator("h1").first.inner_text().strip() == title
            screenshot(page, f"integrations-{path}")
