"""The Hugging Face TrainerCallback against the real library: a tiny BERT (built from a config, no download)
trained SimCSE-style on CPU, positives = the same token sequence with a quarter of its tokens replaced."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers", reason="transformers is not installed (requirements-dev.txt)")
pytest.importorskip("accelerate", reason="Trainer needs accelerate (requirements-dev.txt)")

from integration_models import F16_ATOL, F16_RTOL, nt_xent  # noqa: E402

from diagnostics import open_run  # noqa: E402
from integrations.hf import ContrastScopeCallback  # noqa: E402
from integrations.probe import ProbeSet  # noqa: E402

VOCAB, LENGTH, LR = 40, 12, 1e-3


def token_views(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class c draws its tokens from the band [8c + 2, 8c + 10); the positive view redraws 3 of 12 tokens."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    ids = 2 + 8 * labels[:, None] + torch.randint(0, 8, (n, LENGTH), generator=g)
    ids[:, 0] = 1  # [CLS]
    pos = ids.clone()
    swap = torch.rand((n, LENGTH), generator=g) < 0.25
    swap[:, 0] = False
    pos[swap] = torch.randint(2, VOCAB, (int(swap.sum()),), generator=g)
    return ids, pos, labels


class TinySimCSE(torch.nn.Module):
    def __init__(self, fail_at_call: int | None = None):
        super().__init__()
        config = transformers.BertConfig(
            vocab_size=VOCAB,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=LENGTH,
        )
        self.bert = transformers.BertModel(config)
        self.head = torch.nn.Linear(16, 8)
        self.fail_at_call, self.calls = fail_at_call, 0

    def encode(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.bert(input_ids=input_ids).last_hidden_state[:, 0]  # [CLS] features: N×16
        return F.normalize(self.head(h), dim=1), h

    def forward(self, input_ids, positive_ids):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError(f"NaN loss at call {self.calls}")
        return {"loss": nt_xent(self.encode(input_ids)[0], self.encode(positive_ids)[0])}


def _train(tmp_path, model, steps, every):
    torch.manual_seed(0)
    ids, pos, _ = token_views(128, seed=0)
    dataset = [{"input_ids": a, "positive_ids": b} for a, b in zip(ids, pos)]
    p_ids, p_pos, p_labels = token_views(40, seed=1)
    probe = ProbeSet(
        inputs={"input_ids": p_ids},
        positives={"input_ids": p_pos},
        labels=p_labels,
        batch_size=16,
        metadata={"first_token": p_ids[:, 1].numpy()},
    )
    callback = ContrastScopeCallback(
        str(tmp_path / "runs"), "hf-simcse", probe, every_n_steps=every, embed=lambda model, x: model.encode(**x)
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        learning_rate=LR,
        per_device_train_batch_size=16,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback])
    trainer.train()  # no `with callback:`: a crash is reported through the Trainer's own train()
    return probe


def test_train_writes_metrics_each_step_and_probe_snapshots(tmp_path):
    model = TinySimCSE()
    probe = _train(tmp_path, model, steps=7, every=3)
    run = open_run(str(tmp_path / "runs" / "hf-simcse"))
    assert run.status == "finished"
    assert run.config["training_args"]["learning_rate"] == LR and run.config["training_args"]["max_steps"] == 7
    m = run.metrics()
    per_step = m.dropna(subset=["loss"])
    assert per_step["step"].tolist() == list(range(1, 8))
    assert np.isfinite(per_step[["loss", "grad_norm"]].to_numpy()).all()
    lr = per_step["learning_rate"].to_numpy()
    assert lr[0] == LR and (np.diff(lr) < 0).all()  # linear decay from LR
    assert np.isfinite(m["train_loss"].dropna()).all() and len(m["train_loss"].dropna()) == 1  # the end-of-train log
    assert run.snapshot_steps() == [0, 3, 6, 7]

    snap = run.snapshot(7)
    model.eval()
    with torch.no_grad():
        z, h = model.encode(probe.inputs["input_ids"])
        z_pos, _ = model.encode(probe.positives["input_ids"])
    np.testing.assert_allclose(snap.embeddings, z.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_allclose(snap.positives, z_pos.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_allclose(snap.features, h.numpy(), rtol=F16_RTOL, atol=F16_ATOL)
    np.testing.assert_array_equal(snap.labels, probe.labels.numpy())
    np.testing.assert_array_equal(snap.metadata["first_token"], probe.metadata["first_token"])
    assert np.abs(run.snapshot(0).embeddings - snap.embeddings).max() > 1e-3  # training moved the embeddings


def test_an_exception_in_train_marks_the_run_crashed(tmp_path):
    with pytest.raises(RuntimeError, match="NaN loss at call 4"):
        _train(tmp_path, TinySimCSE(fail_at_call=4), steps=7, every=2)
    run = open_run(str(tmp_path / "runs" / "hf-simcse"))
    assert run.status == "crashed" and "NaN loss at call 4" in run.info["error"]
    assert run.snapshot_steps() == [0, 2]
    assert run.metrics()["step"].tolist() == [1, 2, 3]
