"""Properties every aggregator must have (SPEC §2), parametrised over all methods and the input corpus."""

from __future__ import annotations

import math

import pytest
import torch

from mtrl.aggregators import AGGREGATORS, make_aggregator

from ._asserts import assert_well_formed, cos
from ._inputs import CORPUS, normal

ALL = sorted(AGGREGATORS)
# every registered method with its defaults, plus non-default solver paths worth the same checks
CONFIGS = {name: (name, {}) for name in ALL} | {"nashmtl[cccp]": ("nashmtl", {"solver": "cccp"})}
DETERMINISTIC = [n for n in ALL if n not in ("rlw", "pcgrad", "graddrop", "igbv2")]
# multiplicative factor on the direction when all rows are the same g (documented per method)
IDENTICAL_FACTOR = {
    "ls": 1.0,
    "stl": 1.0,
    "rlw": 1.0,
    "mgda": 1.0,
    "pcgrad": 1.0,
    "imtl": 1.0,
    "cagrad": (1 + 0.4) / (1 + 0.4**2),
    "imgrad": (1 + 0.8) / (1 + 0.8**2),
    "si": 1.0,  # with unit losses
    "dwa": 1.0,
    "uw": 0.5,  # 1/(2σ²) at σ = 1
    "famo": 1.0,
    "graddrop": 1.0,
    "gradnorm_scale": 1.0,
    "threshold": 1.0,  # r = 1 <= threshold: LS
    "igbv1": 1.0,
    "igbv2": 1.0,
}
# moco tracks L_i·g_i/‖g_i‖ from 0 (β_1 = 0.5): identical rows g with unit losses give 0.5·g/‖g‖


def _identical_factor(name: str, g: torch.Tensor) -> float | None:
    if name == "moco":
        return 0.5 / float(g.norm())
    return IDENTICAL_FACTOR.get(name)


def _ones(G: torch.Tensor) -> torch.Tensor:
    return torch.ones(G.shape[0], dtype=G.dtype)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_shape_and_finite(config: str, case: str) -> None:
    G = CORPUS[case]
    name, kwargs = CONFIGS[config]
    agg = make_aggregator(name, **kwargs)
    for _ in range(2):  # second call exercises warm starts / state
        res = agg(G, losses=torch.rand(G.shape[0], dtype=G.dtype) + 0.1)
        assert not res.skipped
        assert_well_formed(res, G)


@pytest.mark.parametrize("name", ALL)
def test_one_task_gives_its_gradient(name: str) -> None:
    g = normal(1)
    res = make_aggregator(name)(g, losses=_ones(g))
    assert cos(res.direction, g[0]) == pytest.approx(1.0, abs=1e-9)
    if _identical_factor(name, g[0]) is not None:
        torch.testing.assert_close(res.direction, g[0] * _identical_factor(name, g[0]))
    else:  # nashmtl: α = 1/‖g‖, direction g/‖g‖ (clipped at max_norm = 1)
        assert float(res.direction.norm()) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("K", [2, 5])
def test_identical_rows_give_that_row(name: str, K: int) -> None:
    g = normal(1, seed=11)[0]
    G = g.repeat(K, 1)
    res = make_aggregator(name)(G, losses=_ones(G))
    assert cos(res.direction, g) == pytest.approx(1.0, abs=1e-9)
    if _identical_factor(name, g) is not None:
        torch.testing.assert_close(res.direction, g * _identical_factor(name, g))
    assert res.stats["imbalance_ratio"] == pytest.approx(1.0)
    assert res.stats["conflict_frac"] == 0.0
    assert res.stats["pareto_failure"] == 0.0
    assert res.stats["cos_theta"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("case", ["normal3", "imbalanced", "normal10"])
def test_permutation_equivariance(name: str, case: str) -> None:
    G = CORPUS[case]
    perm = torch.randperm(G.shape[0], generator=torch.Generator().manual_seed(3))
    L = torch.linspace(0.5, 2.0, G.shape[0], dtype=G.dtype)
    r = make_aggregator(name)(G, losses=L)
    rp = make_aggregator(name)(G[perm], losses=L[perm])
    if name == "stl":  # follows the task index, not the task: equivariant only through that index
        return
    if r.weights is None:  # not a weighting: the direction itself must not depend on the order
        torch.testing.assert_close(rp.direction, r.direction, rtol=1e-6, atol=1e-9)
    else:
        torch.testing.assert_close(rp.weights, r.weights[perm], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ALL)
def test_non_finite_input_is_skipped_and_counted(name: str) -> None:
    agg = make_aggregator(name)
    G = normal(3)
    G[1, 4] = float("nan")
    res = agg(G, losses=torch.ones(3, dtype=G.dtype))
    assert res.skipped and res.stats["skipped"] == 1.0
    assert torch.equal(res.direction, torch.zeros_like(G[0]))
    G2 = normal(3)
    G2[0, 0] = math.inf
    agg(G2, losses=torch.ones(3, dtype=G.dtype))
    G3 = normal(3)
    G3[2, 1] = -math.inf
    assert agg(G3, losses=torch.ones(3, dtype=G.dtype)).skipped
    assert agg.state_dict()["n_skipped"] == 3
    assert not agg(normal(3), losses=torch.ones(3, dtype=torch.float64)).skipped
    # the check reads the float64 Gram diagonal: float32's largest finite values must not look non-finite there
    big = normal(3).float()
    big[0, :] = torch.finfo(torch.float32).max
    assert not agg(big, losses=torch.ones(3)).skipped


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_state_dict_round_trip_continues_identically(config: str) -> None:
    name, kwargs = CONFIGS[config]
    a = make_aggregator(name, **kwargs)
    a.seed(7)
    inputs = [normal(4, seed=s) for s in range(6)]
    for G in inputs[:3]:
        a(G, losses=torch.rand(4, dtype=G.dtype))
    b = make_aggregator(name, **kwargs)
    b.load_state_dict(a.state_dict())
    for G in inputs[3:]:
        L = torch.rand(4, dtype=G.dtype) + 0.5
        ra, rb = a(G, losses=L), b(G, losses=L)
        a.step(L * 0.9)
        b.step(L * 0.9)
        assert torch.equal(ra.direction, rb.direction)


def test_float32_and_float64_agree() -> None:
    G = normal(4, seed=9)
    for name in ALL:
        d64 = make_aggregator(name)(G, losses=_ones(G)).direction
        d32 = make_aggregator(name)(G.float(), losses=_ones(G).float()).direction
        assert d32.dtype == torch.float32
        torch.testing.assert_close(d32.double(), d64, rtol=1e-4, atol=1e-6)


def test_blocked_float64_products_equal_the_plain_ones() -> None:
    """The Gram matrix and ``G d`` are accumulated over float64 column blocks (across block boundaries here)."""
    from mtrl.aggregators._diagnostics import f64_matmul, f64_row_norms

    gen = torch.Generator().manual_seed(0)
    G = torch.randn(4, 150_001, generator=gen) * torch.tensor([[1e-6], [1.0], [1e3], [1e6]])
    d = torch.randn(1, 150_001, generator=gen)
    G64 = G.double()
    torch.testing.assert_close(f64_matmul(G), G64 @ G64.T, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(f64_matmul(G, d), G64 @ d.double().T, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(f64_row_norms(G), torch.linalg.vector_norm(G64, dim=1), rtol=1e-12, atol=0.0)
    assert f64_matmul(torch.zeros(3, 0)).shape == (3, 3) and not f64_matmul(torch.zeros(3, 0)).any()
