"""diagnostics.store.record: written once, read without computing, and trusted only when it matches its snapshot."""

import hashlib
import json
import os

import numpy as np
import pytest

from diagnostics import open_run
from diagnostics.judge.summary import run_table_ready, summary_of
from diagnostics.measure import engine
from diagnostics.store import record
from diagnostics.work.cli import main
from runformat.writer import RunWriter

N, D = 60, 16


def write_run(root, name="r", collapse_last=False, steps=(0, 5, 10), n=N, d=D, nan_rows=None):
    rng = np.random.default_rng(0)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.1}}) as w:
        for step in steps:
            z = rng.standard_normal((n, d)).astype(np.float32)
            if collapse_last and step == steps[-1]:  # every row the same direction: complete collapse
                z = np.ones((n, d), np.float32) + 1e-4 * rng.standard_normal((n, d)).astype(np.float32)
            if nan_rows is not None and step == steps[-1]:
                z[nan_rows] = np.nan
            w.log_metrics(step, {"loss/total": 1.0})
            w.log_snapshot(step, embeddings=z, positives=z + 0.01, labels=np.arange(n) % 3)
    return open_run(os.path.join(str(root), name))


@pytest.fixture
def no_compute(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("load must never compute")

    monkeypatch.setattr(engine, "measure_snapshot", refuse)


def record_folder(run, step):
    folder = os.path.join(run.cache_dir, "records")
    (name,) = [f for f in os.listdir(folder) if f.startswith(f"{step:010d}-")]
    return os.path.join(folder, name)


def test_compute_then_load_reads_the_same_numbers_and_arrays(tmp_path, monkeypatch):
    run = write_run(tmp_path)
    assert record.load(run, 10) is None and record.ready_steps(run) == []
    rec = record.compute(run, 10)
    assert rec.error is None and rec.numbers["n"] == N and rec.numbers["dim"] == D and rec.numbers["step"] == 10
    assert rec.numbers["estimated"] is False and rec.numbers["temperature"] == pytest.approx(0.1)
    monkeypatch.setattr(engine, "measure_snapshot", lambda *a, **k: 1 / 0)
    again = record.load(open_run(run.path), 10)
    assert again.numbers == rec.numbers and record.ready_steps(run) == [10]
    assert again.array("positive_cos").shape == (N,) and again.array("positive_cos").dtype == np.float32
    assert again.array("positive_rank").dtype == np.int32
    assert again.array("hardest_negative_cos").shape == (N, 10)
    assert again.array("hardest_negative_index").shape == (N, 10)
    assert again.array("spectrum").shape == (D,) and again.array("spectrum").dtype == np.float64
    assert again.array("negative_cos_sample").shape == (N * (N - 1),)
    assert again.array("no_such_array") is None
    hist = again.numbers["histograms"]
    assert set(hist) == {"positive", "negative", "hardest_negative"}
    assert sum(hist["positive"]["counts"]) == N and len(hist["negative"]["edges"]) == 81
    np.testing.assert_array_equal(again.array("hardest_negative_cos"), rec.array("hardest_negative_cos"))


def test_run_table_ready_never_computes(tmp_path, no_compute):
    run = write_run(tmp_path, collapse_last=True)
    table, pending = run_table_ready(run)
    assert table.empty and pending == [0, 5, 10]
    assert record.load(run, 5) is None


def test_run_table_ready_after_compute(tmp_path):
    run = write_run(tmp_path, collapse_last=True)
    record.compute(run, 0)
    record.compute(run, 10)
    table, pending = run_table_ready(run)
    assert list(table["step"]) == [0, 10] and pending == [5]
    assert list(table["verdict"]) == ["healthy", "complete_collapse"]
    s = summary_of(record.load(run, 10))
    assert s["verdict"] == "complete_collapse" and s["explanation"] and s["suggestions"]


def tamper(run, step, numbers_edit=None, meta_edit=None, rehash=True):
    folder = record_folder(run, step)
    with open(os.path.join(folder, "numbers.json")) as f:
        numbers = json.load(f)
    with open(os.path.join(folder, "record.json")) as f:
        meta = json.load(f)
    if numbers_edit:
        numbers.update(numbers_edit)
    text = json.dumps(numbers, sort_keys=True).encode()
    with open(os.path.join(folder, "numbers.json"), "wb") as f:
        f.write(text)
    if rehash:
        meta["numbers_sha256"] = hashlib.sha256(text).hexdigest()
    if meta_edit:
        meta.update(meta_edit)
    with open(os.path.join(folder, "record.json"), "w") as f:
        json.dump(meta, f)


HEALTHY = {"std_ratio": 1.0, "rank_fraction": 0.9, "mean_cos": 0.0, "effective_rank_centred": 14.0}


@pytest.mark.parametrize(
    "edit",
    [
        dict(numbers_edit=HEALTHY, rehash=False),  # numbers edited, hash not
        dict(numbers_edit=HEALTHY, meta_edit={"content": "0" * 24}),  # wrong content key
        dict(numbers_edit={**HEALTHY, "n": N + 1}, meta_edit={"n": N + 1}),  # wrong shape
        dict(numbers_edit={**HEALTHY, "dim": 3}),  # numbers disagree with the snapshot
        dict(numbers_edit={**HEALTHY, "std_ratio": "1.0"}),  # schema: a string where a number goes
        dict(meta_edit={"arrays": {"positive_cos": [[N], "float64"]}}),  # schema: the wrong dtype
    ],
)
def test_an_edited_record_is_not_trusted_and_fail_on_collapse_still_exits_3(tmp_path, capsys, edit):
    run = write_run(tmp_path, collapse_last=True)
    assert main(["summarize", run.path, "--fail-on-collapse"]) == 3
    tamper(run, 10, **edit)
    assert record.load(run, 10) is None
    assert main(["summarize", run.path, "--fail-on-collapse"]) == 3
    assert "complete_collapse" in capsys.readouterr().err
    assert record.load(run, 10) is not None  # recomputed and rewritten


def test_a_consistent_record_is_trusted(tmp_path):
    """The checks are not so strict that a valid record is refused: re-hashing unchanged numbers is fine."""
    run = write_run(tmp_path)
    record.compute(run, 10)
    tamper(run, 10)
    assert record.load(run, 10) is not None


@pytest.mark.parametrize("case", ["nan_rows", "one_row", "unreadable"])
def test_unusable_snapshots_get_an_error_record(tmp_path, case):
    if case == "nan_rows":
        run = write_run(tmp_path, nan_rows=slice(0, N - 1))
        why = "finite"
    elif case == "one_row":
        run = write_run(tmp_path, n=1)
        why = "N = 1"
    else:
        run = write_run(tmp_path)
        with open(os.path.join(run.path, "snapshots", f"{10:010d}", "embeddings.npy"), "r+b") as f:
            f.truncate(20)
        why = "unreadable"
    rec = record.compute(run, 10)
    assert rec.error and why in rec.error
    loaded = record.load(run, 10)
    assert loaded is not None and loaded.error == rec.error and loaded.array("positive_cos") is None
    s = summary_of(loaded)
    assert s["error"] == rec.error and s["n"] == (1 if case == "one_row" else N)
    json.dumps(s, allow_nan=False)
    # the CLI reports an unreadable file as an error naming it (exit 2); other unusable snapshots as a row
    code = main(["summarize", run.path, "--json"])
    assert code == (2 if case == "unreadable" else 0)


def test_engine_refuses_d0_and_n1_with_a_reason():
    from runformat.reader import Snapshot

    numbers, arrays = engine.measure_snapshot(Snapshot(step=3, embeddings=np.zeros((5, 0), np.float32)))
    assert "d = 0" in numbers["error"] and arrays == {} and numbers["n"] == 5
    numbers, _ = engine.measure_snapshot(Snapshot(step=3, embeddings=np.zeros((1, 4), np.float32)))
    assert "N = 1" in numbers["error"]


def test_a_new_temperature_or_snapshot_content_is_a_new_record(tmp_path):
    run = write_run(tmp_path)
    record.compute(run, 10)
    with RunWriter(str(tmp_path), "r", resume=True) as w:
        w.log_metrics(10, {"temperature": 0.5})
    run = open_run(run.path)
    assert record.load(run, 10) is None
    assert record.compute(run, 10).numbers["temperature"] == pytest.approx(0.5)
    assert len([f for f in os.listdir(os.path.join(run.cache_dir, "records")) if f.startswith(f"{10:010d}-")]) == 1


def test_report_from_a_page_reads_records_and_never_computes(tmp_path, monkeypatch):
    from diagnostics.draw import report

    run = write_run(tmp_path, collapse_last=True)
    record.compute(run, 0)

    def refuse(*a, **k):
        raise AssertionError("a page's report must not compute")

    monkeypatch.setattr(engine, "measure_snapshot", refuse)
    html = report.build_report([run], ["verdicts"], compute=False)
    assert "step 0" in html and "healthy" in html  # the one ready record; steps 5 and 10 are pending
    assert "complete_collapse" not in html


def test_a_paired_snapshot_record_holds_the_crossmodal_numbers(tmp_path, capsys):
    """sample_runs/crossmodal-clip-lambda1: the record carries crossmodal_numbers' keys, equal to computing them
    directly, so run_table_ready and `summarize --json` show the modality gap and cross-modal recall."""
    import shutil

    from diagnostics.measure.crossmodal import crossmodal_numbers

    src = os.path.join(os.path.dirname(__file__), "..", "sample_runs", "crossmodal-clip-lambda1")
    shutil.copytree(src, tmp_path / "clip", ignore=shutil.ignore_patterns(".cache"))
    run = open_run(str(tmp_path / "clip"))
    step = run.snapshot_steps()[-1]
    snap = run.snapshot(step)
    want = crossmodal_numbers(snap.embeddings, snap.paired_embeddings)
    rec = record.compute(run, step)
    assert rec.error is None
    keys = (
        "modality_gap",
        "cross_modal_recall@1",
        "cross_modal_recall@5",
        "cross_modal_recall@10",
        "cross_modal_recall@1_a_to_b",
        "cross_modal_recall@1_b_to_a",
        "uniformity_a",
        "uniformity_b",
        "effective_rank_a",
        "effective_rank_b",
        "cross_modal_pairs",
    )
    loaded = record.load(open_run(run.path), step)
    for key in keys:  # the same function on the same arrays: equal up to the JSON round trip of a float
        assert loaded.numbers[key] == pytest.approx(want[key], rel=1e-12, abs=1e-12), key
    assert 0.0 <= loaded.numbers["modality_gap"] <= 2.0
    table, pending = run_table_ready(run)
    assert step not in pending and table.set_index("step").loc[step, "modality_gap"] == pytest.approx(
        want["modality_gap"]
    )
    assert main(["summarize", run.path, "--step", str(step), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    out = out[0] if isinstance(out, list) else out
    assert out["cross_modal_recall@1"] == pytest.approx(want["cross_modal_recall@1"])
    assert out["modality_gap"] == pytest.approx(want["modality_gap"])
