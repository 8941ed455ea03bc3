"""Exact reference solvers for the K-space problems, in high precision (mpmath, 60 digits), for small K.

Written independently of ``mtrl.aggregators._solvers``: they enumerate the faces of the simplex and solve each
face's stationarity conditions in closed form, so they are exact for generic full-row-rank inputs (every
principal submatrix of ``A`` invertible), whatever the spread of the gradient norms.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

mp = pytest.importorskip("mpmath").mp
mp.dps = 60


def gram(G: torch.Tensor) -> list[list]:
    """``G Gᵀ`` exactly (up to 60 digits) from the float64 entries of ``G``."""
    rows = [[mp.mpf(float(x)) for x in r] for r in G.double().tolist()]
    K = len(rows)
    return [[mp.fsum(a * b for a, b in zip(rows[i], rows[j])) for j in range(K)] for i in range(K)]


def _sub(A: list[list], idx: tuple[int, ...]) -> Any:
    return mp.matrix([[A[i][j] for j in idx] for i in idx])


def _quad(A: list[list], w: list) -> Any:
    K = len(w)
    return mp.fsum(w[i] * A[i][j] * w[j] for i in range(K) for j in range(K))


def _faces(K: int):
    for m in range(1, K + 1):
        yield from itertools.combinations(range(K), m)


def min_norm(A: list[list]) -> list:
    """MGDA: ``argmin_{w∈Δ} wᵀAw``. On face S the stationary point is ``w_S ∝ A_SS⁻¹ 1``."""
    K = len(A)
    best, best_f = None, None
    for S in _faces(K):
        try:
            x = mp.lu_solve(_sub(A, S), mp.matrix([1] * len(S)))
        except ZeroDivisionError:
            continue
        tot = mp.fsum(x)
        if tot == 0:
            continue
        wS = [x[i] / tot for i in range(len(S))]
        if any(v < 0 for v in wS):
            continue
        w = [mp.mpf(0)] * K
        for i, j in enumerate(S):
            w[j] = wS[i]
        f = _quad(A, w)
        if best_f is None or f < best_f:
            best, best_f = w, f
    return best


def linear_plus_norm(A: list[list], b: list, s) -> list:
    """``argmin_{w∈Δ} wᵀb + s·sqrt(wᵀAw)`` (``s > 0``). On face S with ``ρ = sqrt(wᵀAw)``, stationarity is
    ``b_S + s A_SS w_S / ρ = μ1``, so ``w_S = (ρ/s) A_SS⁻¹(μ1 − b_S)``; ``Σ w = 1`` and ``wᵀAw = ρ²`` give a
    quadratic in μ (``x = A⁻¹1``, ``y = A⁻¹b``): ``μ²·1ᵀx − 2μ·1ᵀy + bᵀy − s² = 0``, ``ρ = s/(μ·1ᵀx − 1ᵀy)``."""
    K = len(A)
    s = mp.mpf(s)

    def obj(w: list) -> Any:
        return mp.fsum(w[i] * b[i] for i in range(K)) + s * mp.sqrt(max(_quad(A, w), mp.mpf(0)))

    cands = []
    for i in range(K):
        w = [mp.mpf(0)] * K
        w[i] = mp.mpf(1)
        cands.append(w)
    for S in _faces(K):
        if len(S) < 2:
            continue
        M = _sub(A, S)
        try:
            x = mp.lu_solve(M, mp.matrix([1] * len(S)))
            y = mp.lu_solve(M, mp.matrix([b[j] for j in S]))
        except ZeroDivisionError:
            continue
        p, q = mp.fsum(x), mp.fsum(y)
        r = mp.fsum(b[j] * y[i] for i, j in enumerate(S)) - s * s
        disc = q * q - p * r
        if disc < 0 or p == 0:
            continue
        for mu in ((q + mp.sqrt(disc)) / p, (q - mp.sqrt(disc)) / p):
            den = mu * p - q
            if den <= 0:
                continue
            rho = s / den
            wS = [(rho / s) * (mu * x[i] - y[i]) for i in range(len(S))]
            if any(v < 0 for v in wS):
                continue
            w = [mp.mpf(0)] * K
            for i, j in enumerate(S):
                w[j] = wS[i]
            cands.append(w)
    return min(cands, key=obj)


def unit_min_norm_sq(A: list[list]) -> Any:
    """Squared norm of the min-norm point of the hull of the unit gradients (0: Pareto-stationary)."""
    K = len(A)
    C = [[A[i][j] / mp.sqrt(A[i][i] * A[j][j]) for j in range(K)] for i in range(K)]
    return _quad(C, min_norm(C))


def nash(A: list[list]) -> list | None:
    """Nash-MTL: the ``α > 0`` with ``Aα = 1/α``, by Newton's method on ``½βᵀCβ − Σ log β`` in the cosine
    matrix ``C`` (``α_i = β_i/‖g_i‖``) at 60 digits, to a residual of 1e-40; None when none exists (0 in the
    hull of the gradients)."""
    K = len(A)
    if unit_min_norm_sq(A) < mp.mpf(10) ** -40:
        return None
    n = [mp.sqrt(A[i][i]) for i in range(K)]
    C = mp.matrix([[A[i][j] / (n[i] * n[j]) for j in range(K)] for i in range(K)])
    beta = mp.matrix([1] * K)

    def f(x: Any) -> Any:
        return (x.T * C * x)[0] / 2 - mp.fsum(mp.log(v) for v in x)

    for _ in range(500):
        Cb = C * beta
        g = mp.matrix([Cb[i] - 1 / beta[i] for i in range(K)])
        if max(abs(beta[i] * Cb[i] - 1) for i in range(K)) < mp.mpf(10) ** -40:
            return [beta[i] / n[i] for i in range(K)]
        H = C + mp.diag([1 / beta[i] ** 2 for i in range(K)])
        step = -mp.lu_solve(H, g)
        t = mp.mpf(1)
        f0, slope = f(beta), (g.T * step)[0]
        while any(beta[i] + t * step[i] <= 0 for i in range(K)) or (
            max(abs(beta[i] * Cb[i] - 1) for i in range(K)) > mp.mpf(10) ** -3
            and f(beta + t * step) > f0 + t * slope / 10**4
        ):  # damped far from the solution, full (quadratically convergent) steps close to it
            t /= 2
        beta = beta + t * step
    raise AssertionError("exact Nash solve did not converge")


def imtl(A: list[list]) -> list:
    """IMTL-G: ``Σα = 1`` and equal ``dᵀg_i/‖g_i‖``: ``α ∝ A⁻¹ n``."""
    K = len(A)
    n = mp.matrix([mp.sqrt(A[i][i]) for i in range(K)])
    x = mp.lu_solve(mp.matrix(A), n)
    tot = mp.fsum(x)
    return [x[i] / tot for i in range(K)]


def combine(w: list, G: torch.Tensor) -> np.ndarray:
    """``wᵀG`` in high precision, returned as float64."""
    rows = [[mp.mpf(float(x)) for x in r] for r in G.double().tolist()]
    return np.array([float(mp.fsum(w[i] * rows[i][p] for i in range(len(w)))) for p in range(len(rows[0]))])


def cos_theta(A: list[list]) -> float:
    """cos of the angle between ``g0`` and the MGDA point ``g_m``."""
    K = len(A)
    wm = min_norm(A)
    u = [mp.mpf(1) / K] * K
    num = mp.fsum(u[i] * A[i][j] * wm[j] for i in range(K) for j in range(K))
    return float(num / mp.sqrt(_quad(A, u) * _quad(A, wm)))


def conflict_averse_weights(A: list[list], c: float, a: float, use_cos: bool, rescale: float) -> list:
    """Row weights of CAGrad (``a = 1``, no cos) / IMGrad (``(a − cosθ)``, ``cosθ`` weights) exactly."""
    K = len(A)
    u = [mp.mpf(1) / K] * K
    b = [mp.fsum(A[i][j] * u[j] for j in range(K)) for i in range(K)]
    g0n = mp.sqrt(_quad(A, u))
    sphi = mp.mpf(c) * g0n
    if use_cos:
        ct = mp.mpf(cos_theta(A))
        lin, nrm = mp.mpf(a) - ct, ct
    else:
        lin, nrm = mp.mpf(1), mp.mpf(1)
    w = linear_plus_norm(A, [lin * v for v in b], nrm * sphi)
    lam = sphi / mp.sqrt(_quad(A, w))
    return [(u[i] + lam * w[i]) / mp.mpf(rescale) for i in range(K)]
