"""Resume in both trainer callbacks against the real libraries (docs/integrations.md, "Resume"): from the last
checkpoint of a finished run, from a checkpoint before a crash (what the crashed attempt wrote past it is
replaced), a refused fresh fit that leaves the earlier run as it was, and automatic versions."""

import json

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed (requirements-dev.txt pins it)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (requirements-dev.txt)")

from integration_models import digits_views, embed_with_features, probe_set  # noqa: E402
from test_integrations_hf import TinySimCSE, token_views  # noqa: E402
from test_integrations_lightning import TinySimCLR  # noqa: E402

from diagnostics import open_run  # noqa: E402
from integrations import hf, lightning  # noqa: E402
from integrations.probe import ProbeSet  # noqa: E402


def _metrics_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -- Lightning ------------------------------------------------------------------------------------------


def _fit(tmp_path, module, steps, ckpt_path=None, every_ckpt=None, **callback_args):
    torch.manual_seed(0)
    a, b, _, _ = digits_views(256)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, b), batch_size=32)
    callback = lightning.ContrastScopeCallback(
        str(tmp_path / "runs"), "pl", probe_set(), embed=embed_with_features, every_n_steps=4, **callback_args
    )
    callbacks = [callback]
    if every_ckpt:
        callbacks.append(
            pl.callbacks.ModelCheckpoint(
                dirpath=str(tmp_path / "ckpt"), every_n_train_steps=every_ckpt, save_top_k=-1, filename="{step}"
            )
        )
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=bool(every_ckpt),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return callback


def test_lightning_resume_after_a_crash_replaces_what_the_crashed_attempt_wrote_past_the_checkpoint(tmp_path):
    with pytest.raises(RuntimeError, match="diverged at step 6"):
        _fit(tmp_path, TinySimCLR(fail_at_step=6), steps=12, every_ckpt=4)
    run_dir = tmp_path / "runs" / "pl"
    crashed = _metrics_lines(run_dir)
    assert [r["step"] for r in crashed] == [1, 2, 3, 4, 5, 6] and open_run(run_dir).snapshot_steps() == [0, 4]
    assert open_run(run_dir).status == "crashed"
    _fit(tmp_path, TinySimCLR(), steps=12, ckpt_path=str(tmp_path / "ckpt" / "step=4.ckpt"), resume=True)
    run = open_run(run_dir)
    lines = _metrics_lines(run_dir)
    assert [r["step"] for r in lines] == list(range(1, 13))  # steps 5, 6 written once: the resumed attempt's
    assert lines[:4] == crashed[:4]  # history up to the checkpoint untouched
    assert run.status == "finished" and run.info["resumed"] == 1 and run.info["error"] is None
    assert run.snapshot_steps() == [0, 4, 8, 12]
    (rewind,) = run.info["rewinds"]
    assert rewind["to_step"] == 4 and rewind["from_step"] == 6 and rewind["metric_records_replaced"] == 2
    assert rewind["snapshots_replaced"] == []


def test_lightning_resume_from_the_last_checkpoint_of_a_finished_run_trains_it_further(tmp_path):
    _fit(tmp_path, TinySimCLR(), steps=8, every_ckpt=8)
    _fit(tmp_path, TinySimCLR(), steps=12, ckpt_path=str(tmp_path / "ckpt" / "step=8.ckpt"), resume=True)
    run = open_run(tmp_path / "runs" / "pl")
    assert run.status == "finished" and run.info["resumed"] == 1 and "rewinds" not in run.info
    assert run.metrics()["step"].tolist() == list(range(1, 13)) and run.snapshot_steps() == [0, 4, 8, 12]


def test_lightning_resume_without_a_checkpoint_is_refused_and_leaves_the_run_as_it_was(tmp_path):
    _fit(tmp_path, TinySimCLR(), steps=8)
    run_dir = tmp_path / "runs" / "pl"
    before = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "writer.lock"}
    with pytest.raises(ValueError, match="without a checkpoint"):
        _fit(tmp_path, TinySimCLR(), steps=8, resume=True)
    after = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "writer.lock"}
    assert after == before and open_run(run_dir).status == "finished"


def test_lightning_resume_from_an_earlier_step_of_a_finished_run_is_refused(tmp_path):
    _fit(tmp_path, TinySimCLR(), steps=8, every_ckpt=4)
    with pytest.raises(ValueError, match="finished at step 8"):
        _fit(tmp_path, TinySimCLR(), steps=8, ckpt_path=str(tmp_path / "ckpt" / "step=4.ckpt"), resume=True)
    run = open_run(tmp_path / "runs" / "pl")
    assert run.status == "finished" and run.metrics()["step"].tolist() == list(range(1, 9))


def test_lightning_version_writes_the_next_free_name(tmp_path):
    _fit(tmp_path, TinySimCLR(), steps=2)
    _fit(tmp_path, TinySimCLR(), steps=2, version=True, description="second try")
    _fit(tmp_path, TinySimCLR(), steps=2, version=True)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["pl", "pl-v2", "pl-v3"]
    assert open_run(tmp_path / "runs" / "pl-v2").description == "second try"


class StepAndEpoch(TinySimCLR):
    def training_step(self, batch, batch_idx):
        a, b = batch
        loss = torch.nn.functional.mse_loss(self.encoder(a), self.encoder(b))
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss


def test_lightning_logs_one_name_per_value_and_epoch_values_once(tmp_path):
    _fit(tmp_path, StepAndEpoch(), steps=20)  # 8 batches an epoch: epochs end at steps 8, 16 and (cut) 20
    lines = _metrics_lines(tmp_path / "runs" / "pl")
    keys = {k for r in lines for k in r}
    assert keys == {"step", "wall_time", "train/loss", "train/loss_epoch", "lr"}  # no _step copy, no `loss` copy
    epochs = [(r["step"], r["train/loss_epoch"]) for r in lines if "train/loss_epoch" in r]
    assert [s for s, _ in epochs] == [8, 16, 20]  # written once each, at the step its epoch ended
    steps = [r for r in lines if "train/loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 21))
    # the epoch value is the mean of that epoch's step losses (float32 arithmetic: 8 terms, rel. 2^-21)
    assert epochs[0][1] == pytest.approx(np.mean([r["train/loss"] for r in steps[:8]]), rel=2**-20)


# -- Hugging Face ---------------------------------------------------------------------------------------


def _train(tmp_path, model, steps, resume_from=None, **callback_args):
    torch.manual_seed(0)
    ids, pos, _ = token_views(128, seed=0)
    dataset = [{"input_ids": a, "positive_ids": b} for a, b in zip(ids, pos)]
    p_ids, p_pos, p_labels = token_views(40, seed=1)
    probe = ProbeSet(inputs={"input_ids": p_ids}, positives={"input_ids": p_pos}, labels=p_labels)
    callback = hf.ContrastScopeCallback(
        str(tmp_path / "runs"), "hf", probe, every_n_steps=3, embed=lambda model, x: model.encode(**x), **callback_args
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        learning_rate=1e-3,
        per_device_train_batch_size=16,
        logging_steps=1,
        save_strategy="steps",
        save_steps=3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback])
    trainer.train(resume_from_checkpoint=resume_from)


def test_hf_resume_after_a_crash_replaces_what_the_crashed_attempt_wrote_past_the_checkpoint(tmp_path):
    with pytest.raises(RuntimeError, match="NaN loss at call 5"):
        _train(tmp_path, TinySimCSE(fail_at_call=5), steps=8)
    run_dir = tmp_path / "runs" / "hf"
    crashed = [r for r in _metrics_lines(run_dir) if "loss" in r]
    assert [r["step"] for r in crashed] == [1, 2, 3, 4] and open_run(run_dir).status == "crashed"
    _train(tmp_path, TinySimCSE(), steps=8, resume_from=str(tmp_path / "out" / "checkpoint-3"), resume=True)
    run = open_run(run_dir)
    per_step = [r for r in _metrics_lines(run_dir) if "loss" in r]
    assert [r["step"] for r in per_step] == list(range(1, 9)) and per_step[:3] == crashed[:3]
    assert run.status == "finished" and run.info["resumed"] == 1
    assert run.snapshot_steps() == [0, 3, 6, 8]
    assert run.info["rewinds"][0]["to_step"] == 3 and run.info["rewinds"][0]["metric_records_replaced"] == 1


def test_hf_resume_of_a_finished_run_from_its_last_checkpoint_and_a_refused_fresh_train(tmp_path):
    _train(tmp_path, TinySimCSE(), steps=6)
    with pytest.raises(ValueError, match="without a checkpoint"):
        _train(tmp_path, TinySimCSE(), steps=6, resume=True)
    assert open_run(tmp_path / "runs" / "hf").status == "finished"
    _train(tmp_path, TinySimCSE(), steps=9, resume_from=str(tmp_path / "out" / "checkpoint-6"), resume=True)
    run = open_run(tmp_path / "runs" / "hf")
    assert run.status == "finished" and run.snapshot_steps() == [0, 3, 6, 9]
    assert run.metrics().dropna(subset=["loss"])["step"].tolist() == list(range(1, 10))


# -- DDP: every rank learns rank 0's resume steps; a refusal raises on every rank -----------------------

DDP_RESUME = """
import sys, numpy as np, torch, torch.distributed as dist
from runformat.writer import RunWriter
dist.init_process_group("gloo")
rank, root = dist.get_rank(), sys.argv[1]
z = torch.full((2, 4), float(rank))
run = RunWriter(root, "ddp", handle_sigterm=False)          # the first attempt: crashes after step 5
for step in range(6):
    run.log_metrics(step, {"loss": float(step)})
    if step % 2 == 1:
        run.log_snapshot(step, embeddings=z)
run.close("crashed", "RuntimeError: died at step 5")
run = RunWriter(root, "ddp", resume=True, resume_step=3, handle_sigterm=False)   # restarted from step 3
assert (run.last_metrics_step, run.last_snapshot_step) == (3, 3), (rank, run.last_snapshot_step)
for step in range(4, 8):
    run.log_metrics(step, {"loss": 10.0 + step})
run.log_snapshot(7, embeddings=z)
run.close("finished")
try:
    RunWriter(root, "ddp", resume=True, resume_step=1, handle_sigterm=False)   # refused on rank 0 ...
except ValueError as e:
    print("refused:", e)                                                         # ... and on rank 1
dist.destroy_process_group()
"""


def test_ddp_resume_shares_rank_0s_steps_and_a_refusal_reaches_every_rank(tmp_path):
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    from browser import free_port

    repo = Path(__file__).resolve().parent.parent
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(DDP_RESUME))
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "runs")],
            cwd=repo,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(
                os.environ,
                PYTHONPATH=str(repo),
                RANK=str(r),
                WORLD_SIZE="2",
                LOCAL_RANK=str(r),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
            ),
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "finished at step 7" in outs[0][0] and "rank 0 refused" in outs[1][0]
    run = open_run(tmp_path / "runs" / "ddp")
    assert run.status == "finished" and run.snapshot_steps() == [1, 3, 7]
    assert run.metrics()["loss"].tolist() == [0, 1, 2, 3, 14, 15, 16, 17]
    assert run.info["rewinds"][0]["snapshots_replaced"] == [5]


DDP_LIGHTNING = """
import sys, torch
sys.path[:0] = [{repo!r}, {tests!r}]
import lightning.pytorch as pl
from integration_models import digits_views, embed_with_features, probe_set
from integrations.lightning import ContrastScopeCallback
from test_integrations_lightning import TinySimCLR
fail_at, ckpt = {fail_at!r}, {ckpt!r}
torch.manual_seed(0)
a, b, _, _ = digits_views(256)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, b), batch_size=32)
callback = ContrastScopeCallback({runs!r}, "ddp", probe_set(), embed=embed_with_features, every_n_steps=2,
                                 resume=ckpt is not None)
saver = pl.callbacks.ModelCheckpoint(dirpath={ckpts!r}, every_n_train_steps=2, save_top_k=-1, filename="{{step}}")
trainer = pl.Trainer(max_steps=6, accelerator="cpu", devices=2, strategy="ddp", callbacks=[callback, saver],
                     logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir={root!r})
trainer.fit(TinySimCLR(fail_at_step=fail_at), loader, ckpt_path=ckpt)
"""


def test_lightning_ddp_resume_after_a_crash(tmp_path):
    """Two gloo ranks crash at step 5; restarted from the step-4 checkpoint they agree on what to snapshot."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from browser import free_port

    repo = Path(__file__).resolve().parent.parent

    def launch(fail_at, ckpt):
        script = tmp_path / "worker.py"
        script.write_text(
            DDP_LIGHTNING.format(
                repo=str(repo),
                tests=str(repo / "tests"),
                runs=str(tmp_path / "runs"),
                ckpts=str(tmp_path / "ckpt"),
                root=str(tmp_path),
                fail_at=fail_at,
                ckpt=ckpt,
            )
        )
        port = free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, str(script)],
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(
                    os.environ,
                    RANK=str(r),
                    LOCAL_RANK=str(r),
                    WORLD_SIZE="2",
                    NODE_RANK="0",
                    MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=str(port),
                ),
            )
            for r in range(2)
        ]
        return [(p.wait(timeout=600), p.stderr.read()) for p in procs]

    crashed = launch(5, None)
    assert all(code != 0 and "diverged at step 5" in err for code, err in crashed), crashed[0][1][-2000:]
    run_dir = tmp_path / "runs" / "ddp"
    assert open_run(run_dir).status == "crashed" and open_run(run_dir).snapshot_steps() == [0, 2, 4]
    resumed = launch(None, str(tmp_path / "ckpt" / "step=4.ckpt"))
    assert all(code == 0 for code, _ in resumed), resumed[0][1][-3000:]
    run = open_run(run_dir)
    assert run.status == "finished" and run.info["resumed"] == 1
    assert run.metrics()["step"].tolist() == [1, 2, 3, 4, 5, 6] and run.snapshot_steps() == [0, 2, 4, 6]
    assert run.info["rewinds"][0]["to_step"] == 4 and run.info["rewinds"][0]["from_step"] == 5
