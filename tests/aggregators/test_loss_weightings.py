"""Defining behaviour of the loss weightings, GradDrop, gradient-norm scaling, the threshold and compositions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrl.aggregators import make_aggregator

from ._inputs import imbalanced, normal


def test_si_weights_are_inverse_losses() -> None:
    G = normal(3)
    L = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    res = make_aggregator("si")(G, losses=L)
    torch.testing.assert_close(res.weights, 1.0 / (3 * L))


def test_uw_weights_converge_to_inverse_twice_the_loss() -> None:
    agg = make_aggregator("uw", lr=0.05)
    L = torch.tensor([0.25, 1.0, 4.0], dtype=torch.float64)
    G = normal(3)
    for _ in range(3000):
        agg(G, losses=L)
        agg.step(L)
    w = agg(G, losses=L).weights
    # weight 1/(2σ²K) with σ² -> L
    torch.testing.assert_close(w * 3, 1.0 / (2 * L), rtol=1e-3, atol=0)


def test_dwa_weights_on_a_known_history() -> None:
    agg = make_aggregator("dwa", window=2, temperature=2.0)
    G = normal(2)
    L = torch.ones(2, dtype=torch.float64)
    history = [[4.0, 2.0], [2.0, 2.0], [1.0, 1.5], [1.0, 1.5]]  # window means: (3, 2) then (1, 1.5)
    for h in history:  # fewer than two complete windows before each of these calls: neutral weights
        torch.testing.assert_close(agg(G, losses=L).weights, torch.full((2,), 0.5, dtype=torch.float64))
        agg.step(torch.tensor(h))
    r = np.array([1.0 / 3.0, 1.5 / 2.0])
    expected = np.exp(r / 2) / np.exp(r / 2).sum()  # λ/K with λ = K softmax(r/T)
    np.testing.assert_allclose(agg(G, losses=L).weights.numpy(), expected)


def test_famo_two_steps_by_hand() -> None:
    gamma, lr = 0.01, 0.025
    agg = make_aggregator("famo", gamma=gamma, w_lr=lr)
    G = normal(2)
    L0 = np.array([2.0, 1.0])
    L1 = np.array([1.0, 0.9])
    L2 = np.array([0.8, 0.5])
    # step 1: z = (1/2, 1/2); weights ∝ z/ℓ, normalised
    w = agg(G, losses=torch.tensor(L0)).weights.numpy()
    np.testing.assert_allclose(w, (0.5 / L0) / (0.5 / L0).sum(), rtol=1e-7)
    agg.step(torch.tensor(L1))
    # by hand: δ = log L0 − log L1; grad = (diag(z) − z zᵀ)δ + γξ with ξ = 0; Adam step 1: ξ = −lr·sign(grad)
    z = np.array([0.5, 0.5])
    d = np.log(L0) - np.log(L1)
    g1 = z * d - z * (z @ d)
    m, v = 0.1 * g1, 0.001 * g1**2
    xi = -lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(agg.logits, xi, rtol=1e-6)
    # step 2 from ξ
    agg(G, losses=torch.tensor(L1))
    agg.step(torch.tensor(L2))
    z = np.exp(xi) / np.exp(xi).sum()
    d = np.log(L1) - np.log(L2)
    g2 = z * d - z * (z @ d) + gamma * xi
    m = 0.9 * m + 0.1 * g2
    v = 0.999 * v + 0.001 * g2**2
    xi2 = xi - lr * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(agg.logits, xi2, rtol=1e-6)


def test_graddrop_keeps_everything_when_signs_agree_and_is_seeded() -> None:
    G = normal(3).abs()
    torch.testing.assert_close(make_aggregator("graddrop")(G).direction, G.mean(0))
    Gm = normal(3, seed=1)
    a, b = make_aggregator("graddrop", seed=5), make_aggregator("graddrop", seed=5)
    assert torch.equal(a(Gm).direction, b(Gm).direction)
    d = a(Gm).direction
    # every coordinate keeps either only the positive or only the negative entries
    kept_pos = (d * 3 - Gm.clamp(min=0).sum(0)).abs() < 1e-12
    kept_neg = (d * 3 - Gm.clamp(max=0).sum(0)).abs() < 1e-12
    assert bool((kept_pos | kept_neg).all())


def test_gradnorm_scale_equalises_contributions() -> None:
    G = imbalanced()
    res = make_aggregator("gradnorm_scale")(G)
    contrib = (res.weights[:, None] * G).norm(dim=1)
    torch.testing.assert_close(contrib, torch.full_like(contrib, float(G.norm(dim=1).mean()) / 3))


def test_threshold_is_ls_below_and_base_above() -> None:
    balanced = normal(3, seed=3)
    G_hi = imbalanced()  # ratio ~ 100
    ratio_bal = float(balanced.norm(dim=1).max() / balanced.norm(dim=1).min())
    agg = make_aggregator("threshold", base="cagrad", threshold=ratio_bal + 0.1, base_kwargs={"c": 0.5})
    r1 = agg(balanced)
    torch.testing.assert_close(r1.direction, make_aggregator("ls")(balanced).direction)
    assert r1.stats["threshold_active"] == 0.0
    r2 = agg(G_hi)
    torch.testing.assert_close(r2.direction, make_aggregator("cagrad", c=0.5)(G_hi).direction)
    assert r2.stats["threshold_active"] == 1.0


def test_composition_scales_rows_then_combines() -> None:
    G = normal(3, seed=4)
    L = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    comp = make_aggregator("si+imgrad", imgrad={"c": 0.5})
    res = comp(G, losses=L)
    s = 1.0 / L  # K · w^si
    ref = make_aggregator("imgrad", c=0.5)(G * s[:, None], losses=L * s)
    torch.testing.assert_close(res.direction, ref.direction)
    torch.testing.assert_close(res.weights @ G, res.direction)
    assert res.stats["pre_weights"] == pytest.approx((1.0 / (3 * L)).tolist())
    # a neutral weighting (DWA before two windows) leaves the gradient method unchanged
    torch.testing.assert_close(
        make_aggregator("dwa+nashmtl")(G, losses=L).direction, make_aggregator("nashmtl")(G, losses=L).direction
    )


@pytest.mark.parametrize("name", ["famo+imgrad", "uw+nashmtl"])
def test_composition_state_round_trip(name: str) -> None:
    a = make_aggregator(name)
    for s in range(3):
        L = torch.rand(3, dtype=torch.float64) + 0.5
        a(normal(3, seed=s), losses=L)
        a.step(L * 0.8)
    b = make_aggregator(name)
    b.load_state_dict(a.state_dict())
    L = torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)
    assert torch.equal(a(normal(3, seed=9), losses=L).direction, b(normal(3, seed=9), losses=L).direction)


def test_composition_errors() -> None:
    with pytest.raises(ValueError, match="unknown aggregator 'dwx'"):
        make_aggregator("dwx+imgrad")
    with pytest.raises(ValueError, match="two registry names"):
        make_aggregator("dwa+imgrad+ls")
    with pytest.raises(TypeError, match="arguments go under"):
        make_aggregator("dwa+imgrad", c=0.3)


def test_igbv1_gaps_against_the_second_window_baseline() -> None:
    agg = make_aggregator("igbv1", window=2, temperature=1.0)
    G = normal(2)
    L = torch.ones(2, dtype=torch.float64)
    for h in ([9.0, 9.0], [9.0, 9.0], [2.0, 4.0], [4.0, 2.0]):  # windows: (9, 9) then baseline (3, 3)
        torch.testing.assert_close(agg(G, losses=L).weights, torch.full((2,), 0.5, dtype=torch.float64))
        agg.step(torch.tensor(h))
    cur = torch.tensor([1.5, 0.3], dtype=torch.float64)
    gap = cur.numpy() / 3.0
    expected = np.exp(gap) / np.exp(gap).sum()
    np.testing.assert_allclose(agg(G, losses=cur).weights.numpy(), expected)
    agg.step(cur)
    agg.step(cur)  # a later window does not move the "baseline" reference
    np.testing.assert_allclose(agg(G, losses=cur).weights.numpy(), expected)


def _moco_reference(
    Gs: list[torch.Tensor], Ls: list[torch.Tensor], beta: float, bs: float, gamma: float, gs: float, rho: float
) -> list[torch.Tensor]:
    """The MoCo authors' update (as in LibMTL ``MoCo.backward``), written out step by step in float64."""
    K, P = Gs[0].shape
    y = torch.zeros(K, P, dtype=torch.float64)
    lam = torch.full((K,), 1.0 / K, dtype=torch.float64)
    out = []
    for t, (G, L) in enumerate(zip(Gs, Ls), start=1):
        h = torch.stack([G[i] / G[i].norm() * L[i] for i in range(K)])
        y = y - beta / t**bs * (y - h)
        lam = torch.softmax(lam - gamma / t**gs * (y @ y.T + rho * torch.eye(K, dtype=torch.float64)) @ lam, dim=0)
        out.append(y.T @ lam)
    return out


def test_moco_is_the_authors_algorithm() -> None:
    """Issue 12 (4): tracked L_i·g_i/‖g_i‖, tracking from 0, softmax weight step, YYᵀ as is."""
    gen = torch.Generator().manual_seed(4)
    Gs = [
        torch.randn(4, 9, generator=gen, dtype=torch.float64)
        * torch.tensor([[1e-2], [1.0], [3.0], [1e2]], dtype=torch.float64)
        for _ in range(8)
    ]
    Ls = [torch.rand(4, generator=gen, dtype=torch.float64) + 0.2 for _ in range(8)]
    hp = dict(beta=0.7, beta_sigma=0.3, gamma=0.4, gamma_sigma=0.6, rho=0.1)
    ref = _moco_reference(Gs, Ls, hp["beta"], hp["beta_sigma"], hp["gamma"], hp["gamma_sigma"], hp["rho"])
    agg = make_aggregator("moco", **hp)
    for G, L, d in zip(Gs, Ls, ref):
        torch.testing.assert_close(agg(G, losses=L).direction, d, rtol=1e-12, atol=1e-14)
    # first step by hand: Y = β·H (tracking from 0), λ = softmax of equal entries = uniform only if YYᵀ1 is flat
    G, L = Gs[0], Ls[0]
    res = make_aggregator("moco")(G, losses=L)
    H = G / G.norm(dim=1, keepdim=True) * L[:, None]
    Y = 0.5 * H
    lam = torch.softmax(
        torch.full((4,), 0.25, dtype=torch.float64) - 0.1 * (Y @ Y.T) @ torch.full((4,), 0.25, dtype=torch.float64),
        dim=0,
    )
    torch.testing.assert_close(res.direction, lam @ Y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.stats["moco_lambda"], lam.numpy(), rtol=1e-12)


def test_moco_needs_losses_and_is_scale_invariant() -> None:
    G = normal(3, seed=5)
    L = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="losses"):
        make_aggregator("moco")(G)
    d = make_aggregator("moco")(G, losses=L).direction
    for s in (1e-6, 1e6):
        torch.testing.assert_close(make_aggregator("moco")(s * G, losses=L).direction, d, rtol=1e-10, atol=1e-14)
