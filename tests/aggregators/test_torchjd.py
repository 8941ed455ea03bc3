"""Agreement with TorchJD's aggregators where the definitions coincide (TorchJD is a test-only dependency).

Scale conventions: TorchJD's ``Mean``, ``MGDA`` and ``IMTLG`` are on our (mean-gradient) scale; its ``CAGrad``
does not divide by ``1+c²`` (ours does, as the official code); its ``PCGrad`` sums the projected gradients
and projects in a fixed order, which for K = 2 coincides with ours with ``reduction="sum"``.
"""

from __future__ import annotations

import pytest
import torch

from mtrl.aggregators import make_aggregator

from ._inputs import WELL_CONDITIONED

tj = pytest.importorskip("torchjd.aggregation", reason="torchjd (dev extra) not installed")

CASES = sorted(WELL_CONDITIONED)


@pytest.mark.parametrize("case", CASES)
def test_mean(case: str) -> None:
    G = WELL_CONDITIONED[case]
    torch.testing.assert_close(make_aggregator("ls")(G).direction, tj.Mean()(G))


@pytest.mark.parametrize("case", CASES)
def test_mgda(case: str) -> None:
    G = WELL_CONDITIONED[case]
    ours, theirs = make_aggregator("mgda")(G).direction, tj.MGDA(epsilon=1e-12, max_iters=100_000)(G)
    # TorchJD runs Frank-Wolfe (approximate); ours is exact (KKT-checked): same point up to FW's accuracy, and
    # ours has the smaller (or equal) norm
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-4 * float(G.norm()))
    assert float(ours.norm()) <= float(theirs.norm()) * (1 + 1e-9)


@pytest.mark.parametrize("case", CASES)
def test_imtlg(case: str) -> None:
    G = WELL_CONDITIONED[case]
    torch.testing.assert_close(make_aggregator("imtl")(G).direction, tj.IMTLG()(G))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("c", [0.4, 0.9])
def test_cagrad(case: str, c: float) -> None:
    G = WELL_CONDITIONED[case]
    ours = make_aggregator("cagrad", c=c)(G).direction * (1 + c * c)
    theirs = tj.CAGrad(c=c, norm_eps=0.0)(G)
    # both solve the same convex weight problem to solver tolerance: directions agree to ~1e-4 relative
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-3 * float(theirs.norm()))


@pytest.mark.parametrize("case", ["normal2", "conflicting2"])
def test_pcgrad_two_tasks(case: str) -> None:
    G = WELL_CONDITIONED[case]
    torch.testing.assert_close(make_aggregator("pcgrad", reduction="sum")(G).direction, tj.PCGrad()(G))
