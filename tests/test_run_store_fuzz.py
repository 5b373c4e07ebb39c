"""Garbage in any run file is a RunFormatError naming the file, never another exception, never a pickle."""
import os

import numpy as np
from hypothesis import HealthCheck, example, given, settings, strategies as st

from diagnostics import RunFormatError, open_run
from runformat import layout
from training import RunWriter

TARGETS = [layout.RUN_FILE, layout.CONFIG_FILE, layout.METRICS_FILE,
           f"{layout.SNAPSHOT_DIR}/{layout.snapshot_dirname(0)}.json",
           f"{layout.SNAPSHOT_DIR}/{layout.snapshot_dirname(0)}/embeddings.npy",
           f"{layout.SNAPSHOT_DIR}/{layout.snapshot_dirname(0)}/labels.npy"]

npy_header = st.builds(lambda descr, shape, tail: (b"\x93NUMPY\x01\x00" + _hdr(descr, shape) + tail),
                       st.sampled_from(["'<f4'", "'|O'", "'<f2'", "'<i8'", "'|V8'", "'<U3'", "'bad'"]),
                       st.lists(st.integers(-2, 70), max_size=3), st.binary(max_size=300))


def _hdr(descr, shape):
    text = f"{{'descr': {descr}, 'fortran_order': False, 'shape': ({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''}), }}"
    text = text.ljust(118) + "\n"
    return len(text).to_bytes(2, "little") + text.encode()


def _read_everything(run):
    run.info, run.config, run.status
    run.metrics()
    for step in run.snapshot_steps():
        run.snapshot(step)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(target=TARGETS[2], garbage=b'{"step": "x"}\n')
@example(target=TARGETS[0], garbage=b'{"format_version": "1"}')
@example(target=TARGETS[3], garbage=b'{"n": 64, "fields": {"embeddings": {"file": "../../../run.json"}}}')
@given(target=st.sampled_from(TARGETS),
       garbage=st.one_of(st.binary(max_size=400), npy_header,
                         st.sampled_from([b"{}", b"[]", b"null", b'{"format_version": 99}', b'{"fields": 3}',
                                          b'{"step": "x"}\n', b'{"format_version": "1"}',
                                          b'{"format_version": 1, "heartbeat": "soon"}',
                                          b'{"n": "64", "fields": {"embeddings": {"file": 3}}}', b'{"n": 64, "fields": {"embeddings": {}}}'])))
def test_garbage_files_raise_only_run_format_error(tmp_path_factory, target, garbage):
    root = tmp_path_factory.mktemp("fuzz")
    with RunWriter(root, "r", config={"a": 1}) as run:
        run.log_metrics(0, {"loss": 1.0})
        run.log_snapshot(0, embeddings=np.ones((64, 4), np.float32), labels=np.arange(64))
    path = root / "r" / target
    path.write_bytes(garbage)
    try:
        _read_everything(open_run(root / "r"))
    except RunFormatError as e:
        assert os.path.basename(target) in str(e)
