"""`python -m diagnostics`: exit codes (0 ok, 2 error naming the file, 3 collapse), JSON output, compute."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from diagnostics import cache, open_run
from diagnostics.cli import build_parser, main
from training import RunWriter

N, D = 60, 16


def write_run(root, name, collapse_last=False):
    rng = np.random.default_rng(0)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.1}}) as w:
        for step in (0, 5, 10):
            z = rng.standard_normal((N, D)).astype(np.float32)
            if collapse_last and step == 10:  # every row the same direction: complete collapse
                z = np.ones((N, D), np.float32) + 1e-4 * rng.standard_normal((N, D)).astype(np.float32)
            w.log_metrics(step, {"loss/total": 1.0})
            w.log_snapshot(step, embeddings=z, positives=z + 0.01, labels=np.arange(N) % 3)
    return os.path.join(str(root), name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return root, write_run(root, "healthy"), write_run(root, "collapsed", collapse_last=True)


def test_summarize_json_of_the_latest_step(runs, capsys):
    _, healthy, _ = runs
    assert main(["summarize", healthy, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == "healthy" and out["step"] == 10 and out["n"] == N
    assert out["verdict"] == "healthy" and isinstance(out["suggestions"], list)


def test_summarize_all_steps_as_json_and_table(runs, capsys):
    _, _, collapsed = runs
    assert main(["summarize", collapsed, "--step", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["step"] for s in out["summaries"]] == [0, 5, 10]
    assert out["summaries"][-1]["verdict"] == "complete_collapse"
    assert any(a["kind"] == "complete_collapse" for a in out["alarms"])
    assert main(["summarize", collapsed, "--step", "5"]) == 0
    text = capsys.readouterr().out
    assert "step 5" in text and "verdict" in text and "effective_rank" in text


def test_fail_on_collapse_exits_3_only_on_a_collapse(runs, capsys):
    _, healthy, collapsed = runs
    assert main(["summarize", collapsed, "--fail-on-collapse"]) == 3
    assert "complete_collapse" in capsys.readouterr().err
    assert main(["summarize", collapsed, "--step", "0", "--fail-on-collapse"]) == 0
    assert main(["summarize", healthy, "--step", "all", "--fail-on-collapse"]) == 0


def test_errors_exit_2_and_name_the_file(runs, tmp_path, capsys):
    _, healthy, _ = runs
    assert main(["summarize", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["summarize", healthy, "--step", "7"]) == 2
    assert "step 7" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    assert main(["summarize", str(broken)]) == 2
    assert "run.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["summarize"])
    assert e.value.code == 2


def test_compute_fills_the_cache_for_every_run_under_a_root(runs, capsys):
    root, healthy, collapsed = runs
    assert main(["compute", str(root), "--methods", "pca"]) == 0
    err = capsys.readouterr().err
    assert "100.0%" in err or "cached 2/2" in err
    for path in (healthy, collapsed):
        run = open_run(path)
        steps = run.snapshot_steps()
        for prev, step in zip([None] + steps[:-1], steps):  # the walk the dashboard asks for
            assert cache.is_projection_cached(run, step, "pca", init_from_step=prev)
    assert main(["compute", str(root), "--methods", "pca,mds"]) == 2
    assert "mds" in capsys.readouterr().err


def test_report_subcommand_is_registered_when_the_module_exists():
    pytest.importorskip("diagnostics.report")
    args = build_parser().parse_args(["report", "some/run", "-o", "x.html"])
    assert args.output == "x.html" and callable(args.handler)


def test_module_entry_point_exit_code(runs):
    _, _, collapsed = runs
    proc = subprocess.run([sys.executable, "-m", "diagnostics", "summarize", collapsed, "--fail-on-collapse"],
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 3, proc.stderr
