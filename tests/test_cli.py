"""`python -m diagnostics`: exit codes (0 ok, 2 error naming the file, 3 collapse), JSON output, compute."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from diagnostics import open_run
from diagnostics.store import cache
from diagnostics.work.cli import build_parser, main
from runformat.writer import RunWriter

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
    # the gate reads the run's judgement over every snapshot, whichever step is printed (issue #22)
    assert main(["summarize", collapsed, "--step", "0", "--fail-on-collapse"]) == 3
    assert main(["summarize", collapsed, "--step", "0", "--fail-on", "warning"]) == 3
    assert main(["summarize", healthy, "--step", "all", "--fail-on-collapse"]) == 0
    assert main(["summarize", healthy, "--fail-on", "warning"]) == 0


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
    pytest.importorskip("diagnostics.draw.report")
    args = build_parser().parse_args(["report", "some/run", "-o", "x.html"])
    assert args.output == "x.html" and callable(args.handler)


def test_module_entry_point_exit_code(runs):
    _, _, collapsed = runs
    proc = subprocess.run(
        [sys.executable, "-m", "diagnostics", "summarize", collapsed, "--fail-on-collapse"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert proc.returncode == 3, proc.stderr


def test_step_all_reads_the_run_ladder_and_alarms_name_the_config_switch(tmp_path, capsys):
    """sample_runs/complete-collapse-negatives-removed: after step 250 (negatives off) each snapshot's own
    verdict is not an end state, but the run's ladder reads "collapsing"; the alarms' suggestions name the
    config key that changed (RunContext); once the spread has stayed below 0.1× with mean cosine > 0.99 for
    3 snapshots it is named complete collapse, and the gate fails (issue #22: it used to exit 0)."""
    import shutil

    from diagnostics.judge.summary import summary_of
    from diagnostics.store import record

    src = os.path.join(os.path.dirname(__file__), "..", "sample_runs", "complete-collapse-negatives-removed")
    run = shutil.copytree(src, tmp_path / "neg", ignore=shutil.ignore_patterns(".cache"))
    assert main(["summarize", str(run), "--step", "all", "--json", "--fail-on-collapse"]) == 3
    out = json.loads(capsys.readouterr().out)
    by_step = {s["step"]: s for s in out["summaries"]}
    own = {s: summary_of(record.load(open_run(str(run)), s))["verdict"] for s in by_step}
    assert set(own.values()) <= {"healthy", "cone"}
    assert [by_step[s]["verdict"] for s in (75, 150, 225)] == ["healthy"] * 3
    assert all(
        by_step[s]["verdict"] == "collapsing" and by_step[s]["explanation"].startswith("Collapsing")
        for s in by_step
        if 300 <= s < 900
    )
    assert by_step[900]["verdict"] == "complete_collapse" and "since step 750" in by_step[900]["explanation"]
    assert "AUC 0.97" in by_step[900]["explanation"]  # what is still separable, said beside it
    assert out["judgement"]["verdict"] == "complete_collapse" and out["judgement"]["since"] == 300
    assert out["judgement"]["severity"] == "critical"
    assert all({"step", "verdict", "explanation", "suggestions", "n"} <= set(s) for s in out["summaries"])
    assert out["alarms"] and all(
        {"kind", "severity", "step_started", "step_detected", "message", "suggestion"} <= set(a) for a in out["alarms"]
    )
    collapsing = next(a for a in out["alarms"] if a["kind"] == "collapsing")
    assert collapsing["step_started"] == 300 and "contrastive.negatives_off_step = 250" in collapsing["suggestion"]


def test_step_all_prints_a_narrow_table_unless_wide(runs, capsys):
    _, healthy, _ = runs
    assert main(["summarize", healthy, "--step", "all"]) == 0
    narrow = capsys.readouterr().out.splitlines()
    assert narrow[1].split() == ["step", "verdict", "spread", "rank", "kNN", "alignment", "uniformity"]
    assert main(["summarize", healthy, "--step", "all", "--wide"]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert len(wide[1].split()) > 20 and "effective_rank" in wide[1]
    assert max(map(len, narrow[1:3])) < 100 < max(map(len, wide[1:3]))


def test_reader_warnings_are_one_line(runs, tmp_path, capsys):
    import shutil

    _, healthy, _ = runs
    run = shutil.copytree(healthy, tmp_path / "w")
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 11, "loss/total": [[[\n')
    assert main(["summarize", str(run), "--step", "all"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err and all(line.startswith("warning: ") for line in err), err
    assert "metrics.jsonl" in err[0] and "RunFormatWarning" not in "\n".join(err)


def test_prog_reads_contrastscope_through_the_contrastscope_command(capsys):
    from contrastscope.cli import main as contrastscope_main

    assert build_parser().prog == "python -m diagnostics"
    with pytest.raises(SystemExit) as exc:
        contrastscope_main(["summarize", "--no-such-flag"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("usage: contrastscope summarize")
