"""Each method's defining condition, checked against an independent solve (cvxpy, brute force, P-space code)."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
import torch

from mtrl.aggregators import IMGradNash, make_aggregator

from ._asserts import cos
from ._inputs import WELL_CONDITIONED, normal


def _simplex_grid(K: int, n: int) -> np.ndarray:
    """All points of the simplex with coordinates in multiples of 1/n (brute force for K = 2, 3)."""
    pts = [c for c in itertools.product(range(n + 1), repeat=K - 1) if sum(c) <= n]
    return np.array([[*c, n - sum(c)] for c in pts], dtype=np.float64) / n


def _conflict_averse_objective(G: np.ndarray, lin: float, norm: float, c: float):
    A = G @ G.T
    K = A.shape[0]
    b = A.mean(1)
    s = c * np.sqrt(A.mean())

    def f(w: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(w)
        return lin * (w @ b) + norm * s * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", w, A, w), 0))

    w = cp.Variable(K)
    prob = cp.Problem(cp.Minimize(lin * (b @ w) + norm * s * cp.norm(G.T @ w)), [w >= 0, cp.sum(w) == 1])
    prob.solve(solver=cp.CLARABEL)
    return f, prob.value


# ----------------------------------------------------------------------------------------------- MGDA
@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED) + ["rank_deficient"])
def test_mgda_kkt_and_cvxpy(case: str) -> None:
    from ._inputs import rank_deficient

    G = WELL_CONDITIONED[case] if case in WELL_CONDITIONED else rank_deficient()
    res = make_aggregator("mgda")(G)
    w = res.weights.numpy()
    A = (G @ G.T).numpy()
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    Aw, wAw = A @ w, w @ A @ w
    scale = np.abs(A).max()
    # KKT of min wᵀAw on the simplex: (Aw)_j >= wᵀAw for all j, with equality on the support
    assert np.all(Aw >= wAw - 1e-9 * scale)
    assert np.allclose(Aw[w > 1e-9], wAw, atol=1e-8 * scale)
    x = cp.Variable(G.shape[0])
    prob = cp.Problem(cp.Minimize(cp.sum_squares(G.numpy().T @ x)), [x >= 0, cp.sum(x) == 1])
    prob.solve(solver=cp.CLARABEL)
    assert wAw <= prob.value + 1e-7 * scale


@pytest.mark.parametrize("K", [2, 3])
def test_mgda_brute_force(K: int) -> None:
    G = normal(K, P=4, seed=20 + K).numpy()
    A = G @ G.T
    grid = _simplex_grid(K, 300 if K == 2 else 120)
    best = np.min(np.einsum("ij,jk,ik->i", grid, A, grid))
    w = make_aggregator("mgda")(torch.from_numpy(G)).weights.numpy()
    assert w @ A @ w <= best + 1e-12


# ----------------------------------------------------------------------------------------------- CAGrad / IMGrad
@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED))
@pytest.mark.parametrize("c", [0.4, 0.9])
def test_cagrad_weight_solve_is_optimal(case: str, c: float) -> None:
    G = WELL_CONDITIONED[case]
    res = make_aggregator("cagrad", c=c)(G)
    w = np.array(res.stats["simplex_weights"])
    f, opt = _conflict_averse_objective(G.numpy(), 1.0, 1.0, c)
    assert f(w)[0] <= opt + 1e-6 * abs(opt) + 1e-9
    if G.shape[0] <= 3:
        grid = _simplex_grid(G.shape[0], 400 if G.shape[0] == 2 else 100)
        assert f(w)[0] <= f(grid).min() + 1e-12


@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED))
def test_cagrad_primal_is_the_trust_region_max_min(case: str) -> None:
    """d·(1+c²) solves max_d min_i g_iᵀd s.t. ‖d − g0‖ <= c‖g0‖ (CAGrad Eq. 3): compare with cvxpy's primal."""
    c = 0.5
    G = WELL_CONDITIONED[case].numpy()
    d = make_aggregator("cagrad", c=c)(torch.from_numpy(G)).direction.numpy() * (1 + c * c)
    g0 = G.mean(0)
    x = cp.Variable(G.shape[1])
    t = cp.Variable()
    prob = cp.Problem(cp.Maximize(t), [G @ x >= t, cp.norm(x - g0) <= c * np.linalg.norm(g0)])
    prob.solve(solver=cp.CLARABEL)
    assert np.linalg.norm(d - g0) <= c * np.linalg.norm(g0) * (1 + 1e-6)
    assert (G @ d).min() >= prob.value - 1e-5 * abs(prob.value)


@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED))
@pytest.mark.parametrize("a", [1.0, 1.5])
def test_imgrad_weight_solve_is_optimal(case: str, a: float) -> None:
    G = WELL_CONDITIONED[case]
    res = make_aggregator("imgrad", c=0.8, a=a)(G)
    cos_t = res.stats["cos_theta"]
    # cosθ independently: angle between g0 and the cvxpy min-norm point
    x = cp.Variable(G.shape[0])
    cp.Problem(cp.Minimize(cp.sum_squares(G.numpy().T @ x)), [x >= 0, cp.sum(x) == 1]).solve(solver=cp.CLARABEL)
    gm = x.value @ G.numpy()
    assert cos_t == pytest.approx(cos(torch.from_numpy(gm), G.mean(0)), abs=1e-5)
    w = np.array(res.stats["simplex_weights"])
    f, opt = _conflict_averse_objective(G.numpy(), a - cos_t, cos_t, 0.8)
    assert f(w)[0] <= opt + 1e-6 * abs(opt) + 1e-9
    # direction as defined: (g0 + c‖g0‖/‖g_w‖ g_w) / (1 + c²)
    gw = w @ G.numpy()
    g0 = G.numpy().mean(0)
    expected = (g0 + 0.8 * np.linalg.norm(g0) / np.linalg.norm(gw) * gw) / (1 + 0.64)
    np.testing.assert_allclose(res.direction.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_imgrad_with_cos_theta_one_is_cagrad_with_scaled_objective() -> None:
    """For non-conflicting inputs whose mean is the min-norm point (cosθ = 1), Eq. 11 with a = 2 is CAGrad's
    objective exactly, so the two methods must return the same direction."""
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # g0 = g_m = (0.5, 0.5)
    im = make_aggregator("imgrad", c=0.6, a=2.0)(G)
    assert im.stats["cos_theta"] == pytest.approx(1.0)
    ca = make_aggregator("cagrad", c=0.6)(G)
    torch.testing.assert_close(im.direction, ca.direction)


# ----------------------------------------------------------------------------------------------- PCGrad
def _pcgrad_reference_two_tasks(G: torch.Tensor) -> torch.Tensor:
    """PCGrad for K = 2 written directly in P-space (order does not matter for two tasks)."""
    g1, g2 = G
    p1, p2 = g1.clone(), g2.clone()
    if g1 @ g2 < 0:
        p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
        p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    return (p1 + p2) / 2


@pytest.mark.parametrize("seed", range(5))
def test_pcgrad_two_tasks_matches_p_space_and_leaves_no_conflict(seed: int) -> None:
    G = normal(2, P=6, seed=seed)
    G[1] = -G[0] * 0.5 + 0.3 * G[1]  # conflicting
    res = make_aggregator("pcgrad")(G)
    torch.testing.assert_close(res.direction, _pcgrad_reference_two_tasks(G))
    assert float(res.direction @ G[0]) >= -1e-12 and float(res.direction @ G[1]) >= -1e-12


def test_pcgrad_projected_rows_do_not_conflict_with_what_they_were_projected_on() -> None:
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    agg = make_aggregator("pcgrad", reduction="sum", seed=3)
    res = agg(G)
    # with K = 4 the result is the sum of projected rows; non-conflicting inputs are left untouched
    Gpos = G.abs()
    torch.testing.assert_close(make_aggregator("pcgrad", reduction="sum")(Gpos).direction, Gpos.sum(0))
    assert res.stats["n_projections"] > 0


def test_pcgrad_and_rlw_are_reproducible_from_their_seed() -> None:
    G = normal(5, seed=4)
    G[1] = -G[0]
    for name in ("pcgrad", "rlw"):
        a, b = make_aggregator(name), make_aggregator(name)
        a.seed(11)
        b.seed(11)
        assert torch.equal(a(G).direction, b(G).direction)


def test_rlw_weights_are_random_softmax() -> None:
    agg = make_aggregator("rlw", seed=0)
    ws = [agg(normal(3)).weights for _ in range(3)]
    for w in ws:
        assert float(w.sum()) == pytest.approx(1.0) and bool((w > 0).all())
    assert not torch.equal(ws[0], ws[1])


# ----------------------------------------------------------------------------------------------- IMTL-G
@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED))
def test_imtl_equal_projections(case: str) -> None:
    G = WELL_CONDITIONED[case]
    res = make_aggregator("imtl")(G)
    U = G / G.norm(dim=1, keepdim=True)
    proj = U @ res.direction
    torch.testing.assert_close(proj, proj[0].expand_as(proj), rtol=1e-8, atol=1e-10)
    assert float(res.weights.sum()) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- Nash-MTL
@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED))
def test_nashmtl_newton_solves_the_bargaining_equation(case: str) -> None:
    G = WELL_CONDITIONED[case]
    K = G.shape[0]
    res = make_aggregator("nashmtl", solver="newton", max_norm=0.0)(G)
    alpha = res.weights.numpy() * K
    A = (G @ G.T).numpy()
    assert np.all(alpha > 0)
    np.testing.assert_allclose(A @ alpha, 1.0 / alpha, rtol=1e-8)
    assert res.stats["pareto_failure"] == 0.0  # g_iᵀd = 1/α_i > 0


@pytest.mark.parametrize("case", ["normal2", "normal3", "conflicting2"])
def test_nashmtl_cccp_agrees_with_newton(case: str) -> None:
    G = WELL_CONDITIONED[case]
    cccp = make_aggregator("nashmtl", solver="cccp", max_norm=0.0)(G)
    newton = make_aggregator("nashmtl", solver="newton", max_norm=0.0)(G)
    assert cccp.stats["solver_failed"] == 0.0
    torch.testing.assert_close(cccp.weights, newton.weights, rtol=1e-3, atol=1e-8)


def test_nashmtl_max_norm_clips_the_sum_scale_update() -> None:
    G = normal(3, seed=2) * 10
    res = make_aggregator("nashmtl", solver="newton", max_norm=1.0)(G)
    assert float(res.direction.norm()) * 3 == pytest.approx(1.0, rel=1e-9)  # ‖Σα g‖ = √K > 1, clipped to 1


def test_nashmtl_failed_solve_is_counted_and_falls_back() -> None:
    """At a Pareto-stationary point (g2 = −g1) no bargaining solution exists: the solve must fail visibly."""
    g = normal(1, seed=3)[0]
    G = torch.stack([g, -g])
    for solver in ("cccp", "newton"):
        agg = make_aggregator("nashmtl", solver=solver)
        res = agg(G)
        assert res.stats["solver_failed"] == 1.0
        assert agg.state_dict()["n_solver_failures"] == 1
        assert torch.isfinite(res.direction).all()


# ----------------------------------------------------------------------------------------------- IMGrad-Nash
class _HalfCos(IMGradNash):
    """IMGrad-Nash with cosθ pinned to 1/2: its objective is then half of Nash-MTL's."""

    def _objective_weights(self) -> tuple[float, float]:
        return 0.5, 0.5


@pytest.mark.parametrize("case", ["normal2", "normal3", "conflicting2", "imbalanced3"])
def test_imgrad_nash_at_half_cos_equals_nash(case: str) -> None:
    G = WELL_CONDITIONED[case]
    half = _HalfCos(max_norm=0.0)(G)
    nash = make_aggregator("nashmtl", solver="cccp", max_norm=0.0)(G)
    assert half.stats["solver_failed"] == nash.stats["solver_failed"]
    # same program up to a factor 1/2; the conic solver stops at a relative tolerance, so the CCCP iterates agree
    # to ~1e-3 (exact agreement of the programs is checked by the identical failure pattern above)
    torch.testing.assert_close(half.weights, nash.weights, rtol=5e-3, atol=1e-10)


def test_imgrad_nash_keeps_pareto_property_where_nash_fails() -> None:
    G = torch.randn(3, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    G = G * torch.tensor([[20.0], [1.0], [1.0]], dtype=torch.float64)  # imbalanced: cosθ ≈ 0.07
    nash = make_aggregator("nashmtl", solver="cccp")(G)
    im = make_aggregator("imgrad_nash")(G)
    # not Pareto-stationary (a bargaining solution exists), yet the reference CCCP's subproblem is unbounded
    assert nash.stats["pareto_stationary"] == 0.0
    assert nash.stats["solver_failed"] == 1.0 and nash.stats["pareto_failure"] == 1.0
    assert im.stats["solver_failed"] == 0.0
    assert min(im.stats["cos_to_direction"]) >= 0.0


@pytest.mark.parametrize("case", sorted(WELL_CONDITIONED))
def test_imgrad_nash_successful_solves_are_pareto(case: str) -> None:
    res = make_aggregator("imgrad_nash")(WELL_CONDITIONED[case])
    if res.stats["solver_failed"] == 0.0:
        assert min(res.stats["cos_to_direction"]) > 0.0


@pytest.mark.parametrize("scale", [1.0, 1e8, 1e17, 1e300])
def test_simplex_projection_is_on_the_simplex_and_nearest_at_any_magnitude(scale: float) -> None:
    """The projection onto the simplex at magnitudes where ``u₁ − (u₁ − 1)`` rounds to 0 (1e17 and beyond): the
    result is on the simplex and, for one entry far above the others, that entry's vertex; at scale 1 it is the
    nearest point of the simplex (checked against every point of a fine grid on the 3-simplex)."""
    from mtrl.aggregators._solvers import project_simplex

    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(size=5) * scale
        w = project_simplex(v)
        assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    if scale >= 1e17:
        assert np.array_equal(project_simplex(np.array([scale, 0.0, -scale])), np.array([1.0, 0.0, 0.0]))
    else:
        v = np.array([0.3, 0.9, -0.4])
        grid = np.array([(a, b, 1 - a - b) for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201)
                         if a + b <= 1 + 1e-12])  # fmt: skip
        w = project_simplex(v)
        assert np.linalg.norm(w - v) <= np.min(np.linalg.norm(grid - v, axis=1)) + 1e-12
