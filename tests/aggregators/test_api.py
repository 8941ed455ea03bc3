"""Registry, errors, repr, diagnostics computed by hand, pinned values and the autograd glue."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtrl.aggregators import AGGREGATORS, aggregate_backward, make_aggregator, per_task_gradients, write_direction

from ._inputs import normal


def test_registry_has_the_foundation_methods() -> None:
    assert {"ls", "stl", "rlw", "mgda", "pcgrad", "imtl", "cagrad", "nashmtl", "imgrad"} <= set(AGGREGATORS)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown aggregator 'imgard'.*cagrad.*imgrad"):
        make_aggregator("imgard")


def test_bad_kwarg_is_named() -> None:
    with pytest.raises(TypeError, match=r"'cagrad' got unknown argument\(s\) alpha; valid: c, rescale"):
        make_aggregator("cagrad", alpha=0.4)


@pytest.mark.parametrize(
    "name, kwargs", [("cagrad", {"c": -1.0}), ("imgrad", {"rescale": 5}), ("nashmtl", {"solver": "ecos"})]
)
def test_bad_values_raise_value_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=name):
        make_aggregator(name, **kwargs)


def test_repr_shows_hyperparameters() -> None:
    assert repr(make_aggregator("cagrad", c=0.9)) == "CAGrad(c=0.9, rescale=1)"
    assert repr(make_aggregator("imgrad")) == "IMGrad(c=0.8, a=1.5, rescale=1)"


def test_bad_shapes_are_refused() -> None:
    agg = make_aggregator("ls")
    with pytest.raises(ValueError, match=r"\[K, P\]"):
        agg(torch.zeros(3))
    with pytest.raises(ValueError, match="2 losses for 3"):
        agg(torch.zeros(3, 4), losses=torch.zeros(2))


def test_diagnostics_by_hand() -> None:
    # g1 = (3, 0), g2 = (-1, 1): ‖g1‖ = 3, ‖g2‖ = √2, cos(g1, g2) = -3/(3√2) < 0
    G = torch.tensor([[3.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    s = make_aggregator("ls")(G).stats
    assert s["grad_norms"] == pytest.approx([3.0, math.sqrt(2)])
    assert s["imbalance_ratio"] == pytest.approx(3.0 / math.sqrt(2))
    assert s["conflict_frac"] == 1.0
    d = np.array([1.0, 0.5])  # mean
    assert s["cos_to_direction"] == pytest.approx(
        [3 / (3 * np.linalg.norm(d)), -0.5 / (math.sqrt(2) * np.linalg.norm(d))]
    )
    assert s["pareto_failure"] == 1.0
    # MGDA point of segment [g1, g2]: w1 = (A22 - A12)/(A11 + A22 - 2 A12) = (2 + 3)/(9 + 2 + 6) = 5/17
    gm = 5 / 17 * np.array([3.0, 0.0]) + 12 / 17 * np.array([-1.0, 1.0])
    assert s["cos_theta"] == pytest.approx(float(gm @ d / np.linalg.norm(gm) / np.linalg.norm(d)))


def test_zero_rows_give_documented_ratios() -> None:
    assert make_aggregator("ls")(torch.zeros(2, 3)).stats["imbalance_ratio"] == 1.0
    assert make_aggregator("ls")(torch.tensor([[1.0, 0.0], [0.0, 0.0]])).stats["imbalance_ratio"] == math.inf


# Pinned outputs on a fixed input (regression guard; values produced by this implementation and checked
# against the defining-condition tests above).
PINNED_G = torch.tensor([[1.0, 0.5, -0.2], [-0.4, 0.3, 0.9], [0.1, -0.7, 0.2]], dtype=torch.float64) * torch.tensor(
    [[4.0], [1.0], [0.5]], dtype=torch.float64
)


def test_pinned_values() -> None:
    got = {n: make_aggregator(n)(PINNED_G).direction.numpy().round(6).tolist() for n in sorted(PINNED)}
    assert got == PINNED


PINNED = {
    "cagrad": [1.012078, 0.221101, 0.389649],
    "imgrad": [0.622846, 0.048908, 0.605411],
    "imtl": [0.201759, -0.030775, 0.239415],
    "ls": [1.216667, 0.65, 0.066667],  # by hand: column means of PINNED_G
    "mgda": [0.133333, -0.14902, 0.196078],
    "nashmtl": [0.206015, -0.04004, 0.25897],
    "pcgrad": [1.214885, 0.379251, 0.725382],
    "stl": [4.0, 2.0, -0.8],  # by hand: first row
}


def test_autograd_glue_matches_manual_gradients() -> None:
    torch.manual_seed(0)
    trunk = torch.nn.Linear(3, 4)
    heads = torch.nn.ModuleList([torch.nn.Linear(4, 1) for _ in range(2)])
    x = torch.randn(5, 3)
    losses = [heads[i](trunk(x)).pow(2).mean() for i in range(2)]
    shared = list(trunk.parameters())
    G = per_task_gradients(losses, shared)
    for i in range(2):
        gi = torch.autograd.grad(losses[i], shared, retain_graph=True)
        torch.testing.assert_close(G[i], torch.cat([g.reshape(-1) for g in gi]))
    head_grads = [torch.autograd.grad(losses[i], list(heads[i].parameters()), retain_graph=True) for i in range(2)]
    res = aggregate_backward(make_aggregator("ls"), losses, shared, list(heads.parameters()))
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in shared]), G.mean(0))
    for i in range(2):  # each head gets exactly its own task's gradient
        for p, g in zip(heads[i].parameters(), head_grads[i]):
            torch.testing.assert_close(p.grad, g)
    assert not res.skipped


def test_write_direction_checks_length() -> None:
    p = [torch.nn.Parameter(torch.zeros(2, 2))]
    write_direction(p, torch.arange(4.0), scale=2.0)
    torch.testing.assert_close(p[0].grad, torch.tensor([[0.0, 2.0], [4.0, 6.0]]))
    with pytest.raises(ValueError, match="5 entries, parameters 4"):
        write_direction(p, torch.zeros(5))


def test_k_space_solvers_are_fast() -> None:
    """Sanity bound, far above the measured ~0.1-0.3 ms, so that an accidental O(P) or cvxpy path is caught."""
    import time

    G = normal(10, P=100, seed=1)
    for name in ("cagrad", "imgrad", "mgda", "imtl", "pcgrad"):
        agg = make_aggregator(name)
        agg(G)
        t = time.perf_counter()
        for _ in range(10):
            agg(G)
        assert (time.perf_counter() - t) / 10 < 0.05, name
