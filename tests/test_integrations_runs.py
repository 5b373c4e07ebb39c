"""What integrations need from the run files and the dashboard: files a teammate can read, a hung loop that
turns stalled, Live's metric roles, Home's search over an imported run, a crashed run's error text."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard import metric_roles, overview
from diagnostics import open_run
from runformat.writer import RunWriter

REPO = Path(__file__).resolve().parent.parent


def test_files_are_written_with_the_process_umask(tmp_path):
    code = (
        "import os, numpy as np; os.umask(0o022); from runformat.writer import RunWriter\n"
        f"with RunWriter({str(tmp_path)!r}, 'shared', config={{'a': 1}}) as w:\n"
        "    w.log_metrics(0, {'loss': 1.0}); w.log_snapshot(0, embeddings=np.eye(4, dtype='float32'))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120
    )
    files = [p for p in (tmp_path / "shared").rglob("*") if p.is_file() and p.name != "writer.lock"]
    assert {p.name for p in files} >= {"run.json", "config.json", "metrics.jsonl", "embeddings.npy"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}  # 0666 & ~022


def test_a_hung_loop_stops_the_heartbeat_and_turns_stalled(tmp_path):
    w = RunWriter(str(tmp_path), "hang", heartbeat_every_s=0.05, stall_after_s=0.5, handle_sigterm=False)
    w.log_metrics(0, {"loss": 1.0})
    logged = time.time()
    time.sleep(1.0)  # the loop hangs: no log call, no beat(), while the writer's thread lives on
    run = open_run(tmp_path / "hang")
    assert run.info["heartbeat"] <= logged and run.status == "stalled"
    w.beat()  # it came back
    time.sleep(0.3)
    assert open_run(tmp_path / "hang").status == "running"
    w.close()


def test_roles_are_recognised_from_each_tools_names():
    lightning = pd.DataFrame({"step": [1, 2], "train/loss": [2.0, 1.0], "lr-AdamW": [0.1, 0.1], "acc": [0.5, 0.6]})
    hf = pd.DataFrame(
        {
            "step": [1, 2],
            "loss": [2.0, 1.0],
            "learning_rate": [1e-3, 5e-4],
            "grad_norm": [3.0, 2.0],
            "train_loss": [np.nan, 1.5],
            "epoch": [0.5, 1.0],
        }
    )
    tb = pd.DataFrame({"step": [0], "Loss/train": [1.0], "tau": [0.2]})
    assert metric_roles.sources(lightning.columns) == {"loss/total": "train/loss", "lr": "lr-AdamW"}
    assert metric_roles.sources(hf.columns) == {"loss/total": "loss", "lr": "learning_rate", "grad_norm": "grad_norm"}
    assert metric_roles.sources(tb.columns) == {"loss/total": "Loss/train", "temperature": "tau"}
    charted = metric_roles.charted(hf)
    assert charted["loss/total"].tolist() == [2.0, 1.0] and charted["lr"].tolist() == [1e-3, 5e-4]
    assert "loss/total" not in hf.columns  # the frame given is not changed
    assert metric_roles.pickable({"pl": lightning, "hf": hf, "tb": tb}) == ["acc", "epoch", "train_loss"]
    (panel,) = metric_roles.picked_panels({"hf": hf}, ["epoch", "not logged"])
    assert panel.data[0].y.tolist() == [0.5, 1.0]


def test_home_search_over_a_run_with_nan_cells_and_crash_text(tmp_path):
    table = pd.DataFrame(
        {
            "run": ["tb-a", "b"],
            "status": ["finished", "crashed"],
            "alignment": [np.nan, 0.3],
            "notes": ["", "crashed: RuntimeError: NaN loss"],
        },
        dtype=object,
    )
    assert overview.search(table, "nan loss")["run"].tolist() == ["b"]
    assert overview.search(table, "tb")["run"].tolist() == ["tb-a"]
    with RunWriter(str(tmp_path), "boom", handle_sigterm=False) as w:
        w.close("crashed", "RuntimeError: NaN loss at step 4")
    assert metric_roles.error_text(open_run(tmp_path / "boom")) == "RuntimeError: NaN loss at step 4"


def test_probe_set_takes_channels_first_thumbnails_and_string_labels():
    import torch

    from integrations.probe import ProbeSet

    grey = torch.arange(4 * 1 * 3 * 2, dtype=torch.uint8).reshape(4, 1, 3, 2)  # N×1×H×W, torch's layout
    rgb = np.arange(4 * 3 * 3 * 2, dtype=np.uint8).reshape(4, 3, 3, 2)  # N×3×H×W
    probe = ProbeSet(
        inputs=torch.zeros((4, 2)),
        images=grey,
        positive_images=rgb,
        labels=["dog", "cat", "dog", "bird"],
        metadata={"x": [1, 2, 3, 4]},
    )
    np.testing.assert_array_equal(probe.images, grey.numpy()[:, 0])
    np.testing.assert_array_equal(probe.positive_images, rgb.transpose(0, 2, 3, 1))
    assert probe.labels.tolist() == [2, 1, 2, 0]  # ranks in sorted order: bird, cat, dog
    assert list(probe.metadata) == ["label", "x"] and probe.metadata["label"].tolist() == ["dog", "cat", "dog", "bird"]
