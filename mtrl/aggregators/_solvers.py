"""K-space solvers on the probability simplex (float64 numpy; K is 2..40, so no P-sized work here).

* :func:`project_simplex` - Euclidean projection (sort-based, Duchi et al. 2008).
* :func:`min_norm_weights` - MGDA's min-norm point ``argmin_{w∈Δ} wᵀAw`` (closed form for K = 2).
* :func:`min_linear_plus_norm` - ``argmin_{w∈Δ} wᵀb + s·sqrt(wᵀAw)``, the weight problem of CAGrad
  (Liu et al. 2021, Eq. 5) and IMGrad (Zhou et al. 2025, Eq. 11); closed form for K = 2.
* :func:`qp_simplex` - exact primal active-set solver of ``min ½wᵀHw + cᵀw`` on the simplex (the general-K
  path of MGDA and the subproblem of the sequential-QP path of the CAGrad/IMGrad problem).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

_EPS = 1e-12


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` onto the probability simplex."""
    n = v.shape[0]
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ind = np.arange(1, n + 1)
    cond = u - css / ind > 0
    rho = ind[cond][-1]
    tau = css[cond][-1] / rho
    return np.maximum(v - tau, 0.0)


def min_norm_weights(A: np.ndarray, tol: float = 1e-10, max_iter: int = 2000) -> np.ndarray:
    """MGDA weights: ``argmin_{w∈Δ} wᵀAw`` for a PSD Gram matrix ``A`` (Sener & Koltun 2018).

    K = 2 uses the closed form; larger K the accelerated projected gradient on ``A`` normalised by its
    largest diagonal entry, stopped at a relative duality gap of ``tol``.
    """
    K = A.shape[0]
    if K == 1:
        return np.ones(1)
    scale = float(np.max(np.diag(A)))
    if not scale > 0.0:
        return np.full(K, 1.0 / K)
    An = A / scale
    if K == 2:
        den = An[0, 0] + An[1, 1] - 2.0 * An[0, 1]
        if den <= _EPS:
            return np.array([0.5, 0.5])
        t = float(np.clip((An[1, 1] - An[0, 1]) / den, 0.0, 1.0))
        return np.array([t, 1.0 - t])
    return qp_simplex(2.0 * An, np.zeros(K), tol=tol)


def min_linear_plus_norm(
    A: np.ndarray, b: np.ndarray, s: float, w0: np.ndarray | None = None, tol: float = 1e-10, max_iter: int = 2000
) -> np.ndarray:
    """``argmin_{w∈Δ} wᵀb + s·sqrt(wᵀAw)`` (``s >= 0``, ``A`` PSD).

    This is CAGrad's dual (``b = A·1/K``, ``s = c‖g0‖``) and IMGrad's Eq. 11 (both terms reweighted).
    K = 2 has a closed form: with ``w = (t, 1−t)`` the objective is ``p·t + s·sqrt(q(t))`` (plus a constant)
    with ``q`` a convex quadratic; its stationary point solves a quadratic equation, and convexity makes the
    clipped stationary point (or the better end point) the minimiser. General K uses a sequential QP
    (projected Newton) whose subproblems :func:`qp_simplex` solves exactly.
    """
    K = A.shape[0]
    if K == 1:
        return np.ones(1)
    scale = float(np.max(np.diag(A)))
    if not scale > 0.0:
        return np.full(K, 1.0 / K)
    An = A / scale
    bn = b / scale
    sn = s / math.sqrt(scale)

    def fun(w: np.ndarray) -> float:
        return float(w @ bn + sn * math.sqrt(max(float(w @ An @ w), 0.0)))

    if K == 2:
        return _two_task_linear_plus_norm(An, bn, sn, fun)
    return _sqp_linear_plus_norm(An, bn, sn, fun, w0, tol, max_iter)


def _sqp_linear_plus_norm(
    A: np.ndarray,
    b: np.ndarray,
    s: float,
    fun: Callable[[np.ndarray], float],
    w0: np.ndarray | None,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """Sequential QP (projected Newton): each step minimises the exact second-order model on the simplex with
    :func:`qp_simplex`, then an Armijo line search; stops on a Frank-Wolfe gap below ``tol``."""
    K = A.shape[0]
    ridge = 1e-9 * (float(np.trace(A)) / K + 1e-12)
    w = np.full(K, 1.0 / K) if w0 is None else project_simplex(np.asarray(w0, dtype=np.float64))
    f = fun(w)
    for _ in range(max_iter // 10 + 20):
        Aw = A @ w
        rho = math.sqrt(max(float(w @ Aw), 0.0))
        if rho < 1e-150:
            break  # at a Pareto-stationary point ‖g_w‖ = 0: the norm term is non-smooth there and w is optimal
        g = b + s * Aw / rho
        gap = float(g @ w - g.min())
        if gap <= tol:
            break
        H = s * (A / rho - np.outer(Aw, Aw) / rho**3) + ridge * np.eye(K)
        wq = qp_simplex(H, g - H @ w, w0=w, tol=1e-14)
        p = wq - w
        slope = float(g @ p)
        if slope >= 0.0:
            break
        step = 1.0
        while step > 1e-10:
            wn = w + step * p
            fn = fun(wn)
            if fn <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        w, f = project_simplex(wn), fn
    return w


def qp_simplex(H: np.ndarray, c: np.ndarray, w0: np.ndarray | None = None, tol: float = 1e-12) -> np.ndarray:
    """Exact minimiser of ``½wᵀHw + cᵀw`` over the simplex for PSD ``H`` (primal active-set method).

    Works on the face ``{w_j = 0, j ∉ S}``: solves the equality-constrained KKT system there (least squares when
    it is singular), steps to the first blocking bound and drops it, or, when the face optimum is feasible,
    adds the index whose multiplier ``(Hw + c)_j − μ`` is most negative; stops when none is (the KKT
    conditions hold). At most ``4K + 20`` iterations.
    """
    K = H.shape[0]
    if w0 is not None and np.all(w0 >= 0):
        w = np.asarray(w0, dtype=np.float64) / max(float(np.sum(w0)), 1e-300)
    else:
        w = np.zeros(K)
        w[int(np.argmin(0.5 * np.diag(H) + c))] = 1.0
    S = w > 0
    scale = float(np.max(np.abs(H))) + float(np.max(np.abs(c))) + 1e-300
    for _ in range(4 * K + 20):
        idx = np.flatnonzero(S)
        m = idx.size
        kkt = np.zeros((m + 1, m + 1))
        kkt[:m, :m] = H[np.ix_(idx, idx)]
        kkt[:m, m] = 1.0
        kkt[m, :m] = 1.0
        rhs = np.concatenate([-c[idx], [1.0]])
        try:
            sol = np.linalg.solve(kkt, rhs)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        x = sol[:m]
        if np.all(x >= -1e-15):
            w = np.zeros(K)
            w[idx] = np.maximum(x, 0.0)
            w /= w.sum()
            grad = H @ w + c
            mu = float(grad[idx].mean())
            viol = grad - mu
            viol[S] = np.inf
            j = int(np.argmin(viol))
            if viol[j] >= -tol * scale:
                return w
            S[j] = True
        else:
            p = x - w[idx]
            neg = p < 0
            ratios = np.full(m, np.inf)
            ratios[neg] = w[idx][neg] / -p[neg]
            k = int(np.argmin(ratios))
            alpha = min(1.0, float(ratios[k]))
            w[idx] = w[idx] + alpha * p
            w[idx[k]] = 0.0
            w = np.maximum(w, 0.0)
            w /= w.sum()
            S = w > 0
    return w


def _two_task_linear_plus_norm(
    A: np.ndarray, b: np.ndarray, s: float, fun: Callable[[np.ndarray], float]
) -> np.ndarray:
    # w = (t, 1-t): w·b = p t + const,  wᵀAw = α t² + β t + γ
    p = float(b[0] - b[1])
    alpha = float(A[0, 0] + A[1, 1] - 2.0 * A[0, 1])
    beta = float(2.0 * (A[0, 1] - A[1, 1]))
    gamma = float(A[1, 1])
    candidates = [0.0, 1.0]
    if alpha > _EPS and s > 0.0:
        kappa = -p / s  # stationarity: z·sqrt(α)/sqrt(z² + D) = κ with z = 2αt + β
        D = max(4.0 * alpha * gamma - beta * beta, 0.0)
        if kappa * kappa < alpha:
            z = math.copysign(abs(kappa) * math.sqrt(D / (alpha - kappa * kappa)), kappa) if kappa != 0 else 0.0
            candidates.append(float(np.clip((z - beta) / (2.0 * alpha), 0.0, 1.0)))
    best = min(candidates, key=lambda t: fun(np.array([t, 1.0 - t])))
    return np.array([best, 1.0 - best])
