"""Objectives against closed-form values."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.objectives import Temperature, batch_stats, hard_negative_nt_xent, moco_loss, nt_xent, positive_only


@pytest.mark.parametrize("B,tau", [(2, 0.1), (8, 0.5), (32, 1.0)])
def test_nt_xent_collapsed_is_log_2b_minus_1(B, tau):
    # every cosine is 1: the positive is one of 2B−1 equal candidates
    z = torch.full((B, 5), 3.0)
    assert nt_xent(z, z * 0.5, tau).item() == pytest.approx(math.log(2 * B - 1), rel=1e-5)


@pytest.mark.parametrize("B,tau", [(4, 0.1), (8, 0.2), (16, 1.0)])
def test_nt_xent_orthonormal_positives(B, tau):
    # z_a = z_b = e_i: positive cosine 1, all 2B−2 negatives cosine 0
    # loss = −log(e^{1/τ} / (e^{1/τ} + (2B−2))) = log(1 + (2B−2)·e^{−1/τ})
    z = torch.eye(B, 2 * B) * 7.0  # unnormalised on purpose
    expected = math.log(1 + (2 * B - 2) * math.exp(-1 / tau))
    # The loss is logsumexp(logits) − 1/τ: a difference of two numbers near 1/τ, so float32 leaves an
    # absolute error of a few ulps of 1/τ (ulp = 2^-23 relative), not a relative error of the tiny result.
    # 8 ulps of 1/τ is 1e-5 at τ=0.1 against a loss of 2.7e-4 (x86 CPUs differ in the last bits here).
    assert nt_xent(z, z.clone(), tau).item() == pytest.approx(expected, rel=1e-6, abs=8 * 2**-23 / tau)


def test_nt_xent_is_symmetric_and_scale_free():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    assert nt_xent(a, b, 0.2).item() == pytest.approx(nt_xent(b, a, 0.2).item(), rel=1e-6)
    assert nt_xent(a * 10, b * 0.1, 0.2).item() == pytest.approx(nt_xent(a, b, 0.2).item(), rel=1e-5)


def test_nt_xent_matches_explicit_per_anchor_sum():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    z = F.normalize(torch.cat([a, b]), dim=1)
    tau, n = 0.3, 10
    total = 0.0
    for i in range(n):
        j = (i + 5) % n
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / denom)
    assert nt_xent(a, b, tau).item() == pytest.approx(total / n, rel=1e-5)


@pytest.mark.parametrize("K", [1, 16, 1000])
def test_moco_collapsed_is_log_k_plus_1(K):
    q = torch.ones(4, 6)
    assert moco_loss(q, q * 2, torch.ones(K, 6), 0.07).item() == pytest.approx(math.log(K + 1), rel=1e-5)


def test_moco_no_gradient_into_keys_or_queue():
    q = torch.randn(4, 6, requires_grad=True)
    k = torch.randn(4, 6, requires_grad=True)
    queue = torch.randn(32, 6, requires_grad=True)
    moco_loss(q, k, queue, 0.2).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None and queue.grad is None


def test_hard_negative_reduces_to_nt_xent():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g)
    for tau in (0.05, 0.1, 0.5):
        plain = nt_xent(a, b, tau).item()
        assert hard_negative_nt_xent(a, b, tau, beta=0.0, tau_plus=0.0).item() == pytest.approx(plain, rel=1e-5)
        # with τ⁺ = 0 the hard/easy mix at 0 is uniform weighting again, whatever β
        assert hard_negative_nt_xent(a, b, tau, beta=3.0, tau_plus=0.0, hard_fraction=0.0).item() == pytest.approx(
            plain, rel=1e-5
        )
        assert hard_negative_nt_xent(a, b, tau, beta=1.0, tau_plus=0.0).item() > plain  # hard ones weigh more


def test_hard_negative_stable_at_small_tau():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(8, 4, generator=g, requires_grad=True)
    loss = hard_negative_nt_xent(a, a.detach() + 0.01, 0.01, beta=1.0, tau_plus=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all()


@pytest.mark.parametrize("fn", [nt_xent, positive_only, hard_negative_nt_xent])
def test_gradients_reach_both_views(fn):
    g = torch.Generator().manual_seed(4)
    a = torch.randn(6, 5, generator=g, requires_grad=True)
    b = torch.randn(6, 5, generator=g, requires_grad=True)
    loss = fn(a, b, 0.2)
    assert loss.dim() == 0
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_positive_only_is_zero_when_views_agree():
    z = torch.randn(5, 3)
    assert positive_only(z, 2 * z, 0.1).item() == pytest.approx(0.0, abs=1e-5)


def test_batch_stats_on_orthonormal_batch():
    B, tau = 8, 0.1
    z = torch.eye(B, 16)
    loss, logits, targets = nt_xent(z, z.clone(), tau, return_logits=True)
    s = batch_stats(logits, targets, tau, loss)
    assert s["batch/pos_cos"] == pytest.approx(1.0, abs=1e-6)
    assert s["batch/neg_cos"] == pytest.approx(0.0, abs=1e-6)
    assert s["batch/hardest_neg_cos"] == pytest.approx(0.0, abs=1e-6)
    assert s["batch/top1"] == 1.0
    assert s["batch/infonce_bound"] == pytest.approx(math.log(2 * B - 1) - loss.item(), rel=1e-6)


def test_batch_stats_on_collapsed_moco():
    K = 10
    loss, logits, targets = moco_loss(torch.ones(4, 3), torch.ones(4, 3), torch.ones(K, 3), 0.5, return_logits=True)
    s = batch_stats(logits, targets, 0.5, loss)
    assert s["batch/neg_cos"] == pytest.approx(1.0) and s["batch/hardest_neg_cos"] == pytest.approx(1.0)
    assert s["batch/infonce_bound"] == pytest.approx(0.0, abs=1e-5)  # log(K+1) − log(K+1)


def test_temperature_modes():
    step = Temperature(0.1, "step", change_step=100, after=1.0)
    assert float(step(99)) == pytest.approx(0.1) and float(step(100)) == pytest.approx(1.0)
    learn = Temperature(0.07, "learnable", minimum=0.01)
    assert learn.log_inv_tau.requires_grad and float(learn(0).detach()) == pytest.approx(0.07)
    with torch.no_grad():
        learn.log_inv_tau.fill_(math.log(1e4))  # τ = 1e-4 would be below the clamp
    assert float(learn(0).detach()) == pytest.approx(0.01)
    assert not Temperature(0.2).log_inv_tau.requires_grad
    with pytest.raises(ValueError, match="initial"):
        Temperature(0.0)
