"""diagnostics.store.cache: a hit is the same array/dict and computes nothing; corrupt entries are recomputed; keys
follow content, parameters and the init walk; memory:// runs are cached through their Storage."""

import os
import uuid

import numpy as np
import pytest

from diagnostics import open_run
from diagnostics.measure import engine, projection
from diagnostics.store import cache
from runformat.writer import RunWriter

STEPS = (0, 10, 20)


def write_run(root, name="r", n=40, d=8, features=True, seed=0):
    rng = np.random.default_rng(seed)
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.2}}) as w:
        for step in STEPS:
            z = rng.standard_normal((n, d)).astype(np.float32)
            w.log_metrics(step, {"loss/total": 1.0})
            w.log_snapshot(
                step,
                embeddings=z,
                positives=z + 0.1,
                labels=np.arange(n) % 4,
                features=np.hstack([z, z]) if features else None,
            )
    return open_run(os.path.join(str(root), name)) if "://" not in str(root) else open_run(f"{root}/{name}")


@pytest.fixture
def counted(monkeypatch):
    calls = {"project": 0, "summary": 0}
    real_project, real_measure = projection.project, engine.measure_snapshot

    def project(*a, **k):
        calls["project"] += 1
        return real_project(*a, **k)

    def measure_snapshot(*a, **k):
        calls["summary"] += 1
        return real_measure(*a, **k)

    monkeypatch.setattr(cache, "project", project)
    monkeypatch.setattr(engine, "measure_snapshot", measure_snapshot)
    return calls


def test_projection_hit_is_identical_and_computes_nothing(tmp_path, counted):
    run = write_run(tmp_path)
    assert not cache.is_projection_cached(run, 10)
    first = cache.cached_projection(run, 10)
    assert counted["project"] == 1 and cache.is_projection_cached(run, 10)
    again = cache.cached_projection(open_run(run.path), 10)  # a fresh Run: served from disk, not memory
    np.testing.assert_array_equal(first, again)
    assert counted["project"] == 1
    np.testing.assert_array_equal(first, projection.project(run.snapshot(10).embeddings, "pca"))
    assert again.dtype == np.float32 and again.shape == (40, 2)


def test_parameters_seed_and_source_are_separate_entries(tmp_path, counted):
    run = write_run(tmp_path)
    base = cache.cached_projection(run, 0)
    feats = cache.cached_projection(run, 0, source="features")
    cache.cached_projection(run, 0, seed=1)
    cache.cached_projection(run, 0, params={"unused": 1})
    assert counted["project"] == 4
    np.testing.assert_array_equal(feats, projection.project(np.hstack([run.snapshot(0).embeddings] * 2), "pca"))
    assert base.shape == feats.shape
    with pytest.raises(ValueError, match="source"):
        cache.cached_projection(run, 0, source="positives")
    with pytest.raises(ValueError, match="method"):
        cache.cached_projection(run, 0, method="mds")
    with pytest.raises(ValueError, match="init_from_step"):
        cache.cached_projection(run, 0, init_from_step=5)
    with pytest.raises(KeyError):
        cache.cached_projection(run, 7)


def test_missing_features_name_the_source(tmp_path):
    run = write_run(tmp_path, features=False)
    with pytest.raises(ValueError, match="source.*features"):
        cache.cached_projection(run, 0, source="features")


def test_corrupt_entries_are_recomputed_not_errors(tmp_path, counted):
    run = write_run(tmp_path)
    layout = cache.cached_projection(run, 20)
    stats = cache.cached_summary(run, 20)
    folder = os.path.join(run.cache_dir, "projections")
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"\x93NUMPY garbage")
    records = os.path.join(run.cache_dir, "records")
    for name in os.listdir(records):
        with open(os.path.join(records, name, "record.json"), "w") as f:
            f.write('{"verdict": ')
    assert not cache.is_projection_cached(run, 20)
    np.testing.assert_array_equal(cache.cached_projection(run, 20), layout)
    assert cache.cached_summary(run, 20) == stats
    assert counted["project"] == 2 and counted["summary"] == 2
    cache.cached_projection(run, 20)
    assert counted["project"] == 2  # the rewritten entry is a hit again


def test_a_wrong_shape_entry_is_a_miss(tmp_path, counted):
    run = write_run(tmp_path)
    cache.cached_projection(run, 0)
    folder = os.path.join(run.cache_dir, "projections")
    (name,) = [f for f in os.listdir(folder) if f.endswith(".npy")]  # and its .seal
    np.save(os.path.join(folder, name), np.zeros((39, 2), np.float32))
    assert cache.cached_projection(run, 0).shape == (40, 2) and counted["project"] == 2


def test_summary_hit_and_run_table(tmp_path, counted):
    run = write_run(tmp_path)
    s = cache.cached_summary(run, 10)
    assert s["step"] == 10 and s["temperature"] == pytest.approx(0.2) and "verdict" in s
    assert cache.cached_summary(open_run(run.path), 10) == s and counted["summary"] == 1
    table = cache.cached_run_table(run)
    assert list(table["step"]) == list(STEPS) and counted["summary"] == 3
    cache.cached_run_table(run)
    assert counted["summary"] == 3


def test_init_walk_chains_through_earlier_steps(tmp_path, counted):
    run = write_run(tmp_path)
    walked = cache.cached_projection(run, 20, init_from_step=10)
    assert counted["project"] == 3  # steps 0 and 10 of the walk, then 20
    assert cache.is_projection_cached(run, 10, init_from_step=0)
    assert cache.is_projection_cached(run, 0) and not cache.is_projection_cached(run, 10)
    expected = projection.project_steps([run.snapshot(s).embeddings for s in STEPS], "pca")
    np.testing.assert_allclose(walked, expected[2], atol=1e-6)
    np.testing.assert_array_equal(cache.cached_projection(run, 20, init_from_step=10), walked)
    assert counted["project"] == 3


def test_cache_size_and_clear(tmp_path, counted):
    run = write_run(tmp_path)
    assert cache.cache_size(run) == 0
    cache.cached_projection(run, 0)
    size = cache.cache_size(run)
    assert size >= 40 * 2 * 4
    assert cache.clear_cache(run) == size and cache.cache_size(run) == 0
    cache.cached_projection(run, 0)
    assert counted["project"] == 2


def test_memory_runs_are_cached_through_their_storage(counted):
    root = f"memory://cache-test-{uuid.uuid4().hex}"
    run = write_run(root)
    first = cache.cached_projection(run, 10)
    assert cache.is_projection_cached(run, 10) and cache.cache_size(run) > 0
    np.testing.assert_array_equal(cache.cached_projection(run, 10), first)
    assert cache.cached_summary(run, 10) == cache.cached_summary(run, 10)
    assert counted == {"project": 1, "summary": 1}
    assert cache.clear_cache(run) > 0 and not cache.is_projection_cached(run, 10)


def test_an_unwritable_run_is_served_uncached(tmp_path, monkeypatch, counted):
    run = write_run(tmp_path)

    def refuse(path, write):
        raise PermissionError(13, "read-only", path)

    monkeypatch.setattr(run.storage, "write_atomic", refuse)
    with pytest.warns(RuntimeWarning, match="not cached"):
        y = cache.cached_projection(run, 0)
    assert y.shape == (40, 2) and not cache.is_projection_cached(run, 0)


@pytest.mark.parametrize(
    "sidecar",
    [
        b"[" * 100_000,
        b'{"fields": [1, 2], "n": 40}',
        b'{"step": 18446744073709551616, "n": 18446744073709551616, '
        b'"fields": {"embeddings": {"file": "embeddings.npy"}}}',
        b'{"fields": {"embeddings": {"shape": [18446744073709551616, 8]}}}',
    ],
)
def test_a_hostile_sidecar_is_a_run_format_error_naming_the_file(tmp_path, sidecar):
    """cache keys read the sidecar with the reader's bounded parsing: 100,000 '[', a list of fields and a
    2**64 count are RunFormatErrors naming the sidecar, never RecursionError/AttributeError/OverflowError."""
    from diagnostics import RunFormatError
    from diagnostics.store import record

    run = write_run(tmp_path)
    path = os.path.join(run.path, "snapshots", "0000000010.json")
    with open(path, "wb") as f:
        f.write(sidecar)
    for read in (cache.snapshot_key, record.compute):
        with pytest.raises(RunFormatError, match="0000000010.json"):
            read(open_run(run.path), 10)
    assert record.load(open_run(run.path), 10) is None
    with pytest.raises(KeyError):
        cache.snapshot_key(run, 15)
