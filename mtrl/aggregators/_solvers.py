"""K-space solvers on the probability simplex (float64 numpy; K is 2..40, so no P-sized work here).

* :func:`project_simplex` - Euclidean projection (sort-based, Duchi et al. 2008).
* :func:`min_norm_weights` - MGDA's min-norm point ``argmin_{w∈Δ} wᵀAw`` (closed form for K = 2).
* :func:`min_linear_plus_norm` - ``argmin_{w∈Δ} wᵀb + s·sqrt(wᵀAw)``, the weight problem of CAGrad
  (Liu et al. 2021, Eq. 5) and IMGrad (Zhou et al. 2025, Eq. 11); closed form for K = 2.
* :func:`qp_simplex` - exact primal active-set solver of ``min ½wᵀHw + cᵀw`` on the simplex (the general-K
  path of MGDA and the subproblem of the sequential-QP path of the CAGrad/IMGrad problem).
* :func:`qp_simplex_enumerate` - the same problem by enumerating the faces of the simplex (exact; small K).
* :func:`correlation` - ``A = D C D`` with ``D = diag(‖g_i‖)``: the unit-diagonal form Nash-MTL and IMTL solve in.

Scale invariance. Gradient norms in training spread over many decades (IMGrad's "imbalance"), so every solve here
is written to give the same answer for ``s·G`` (``s`` from 1e-6 to 1e6) and to stay exact when the row norms differ
by 1e6: the matrix is normalised before solving, the KKT systems are solved after symmetric diagonal
equilibration, and every stopping test is *relative*: a KKT multiplier of task ``j`` is compared with
``tol·‖g_j‖·‖d‖`` (plus the float64 rounding floor of ``(Aw)_j``), never with a tolerance relative to the largest
gradient alone (which let MGDA stop at the smallest gradient once the norm ratio reached ~1e5).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.linalg.lapack import dgesv as _dgesv

_EPS = 1e-12
_STALL_GAP = 1e-8  # relative Frank-Wolfe gap accepted when the SQP stalls at float64 precision


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` onto the probability simplex (Held et al. 1974; Duchi et al. 2008, Fig. 1).

    The projection is invariant to adding a constant to every entry, so ``v`` is first shifted to ``max(v) = 0``:
    then the first sorted entry always passes the test (``0 − (0 − 1)/1 = 1 > 0``) even for entries of magnitude
    1e17 or more, where the unshifted ``u₁ − (u₁ − 1)`` rounds to 0 and no entry would pass (an IndexError seen
    on a near-singular min-norm step of a real MT10 run)."""
    n = v.shape[0]
    v = v - v.max()
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ind = np.arange(1, n + 1)
    cond = u - css / ind > 0
    rho = ind[cond][-1]
    tau = css[cond][-1] / rho
    return np.maximum(v - tau, 0.0)


def correlation(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, n)`` with ``n_i = ‖g_i‖ = sqrt(A_ii)`` and ``C = D⁻¹AD⁻¹`` (``D = diag(n)``): the cosines between the
    rows, unit diagonal (0 rows and columns, and ``C_ii = 1``, for zero rows). Invariant under per-row scaling."""
    n = np.sqrt(np.clip(np.diag(A), 0.0, None))
    inv = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
    C = A * inv[:, None] * inv[None, :]
    C = np.clip(0.5 * (C + C.T), -1.0, 1.0)
    np.fill_diagonal(C, 1.0)
    return C, n


#: largest K for which the min-norm problem is solved by enumerating all 2^K − 1 faces (exact; ~15 small solves)
ENUMERATE_MAX_K = 4


def min_norm_weights(A: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """MGDA weights: ``argmin_{w∈Δ} wᵀAw`` for a PSD Gram matrix ``A`` (Sener & Koltun 2018, Eq. 3).

    ``A`` is first divided by its largest diagonal entry (scale invariance). K = 2 uses the closed form
    (Sener & Koltun, Alg. 1); K <= :data:`ENUMERATE_MAX_K` enumerates the faces of the simplex
    (:func:`qp_simplex_enumerate`); larger K the primal active-set method :func:`qp_simplex`, whose stopping test
    is relative to each task's own norm (``(Aw)_j ≥ wᵀAw − tol·‖g_j‖·‖d‖``), so the answer stays exact when the
    norms differ by 1e6 or more. If the active-set answer fails the KKT check it is re-solved by enumeration
    (K <= 12).
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
        if not den > 0.0:
            return np.array([0.5, 0.5])
        t = float(np.clip((An[1, 1] - An[0, 1]) / den, 0.0, 1.0))
        return np.array([t, 1.0 - t])
    H = 2.0 * An
    c = np.zeros(K)
    if K <= ENUMERATE_MAX_K:
        return qp_simplex_enumerate(H, c)
    w = qp_simplex(H, c, tol=tol)
    if K <= 12 and not _kkt_holds(H, c, w, 1e3 * tol):
        w = qp_simplex_enumerate(H, c)
    return w


def _kkt_tolerance(H: np.ndarray, c: np.ndarray, w: np.ndarray, tol: float) -> np.ndarray:
    """Per-index tolerance of the KKT multipliers ``(Hw + c)_j − μ`` of the simplex QP: ``tol`` times the natural
    scale of index ``j`` (``sqrt(H_jj·wᵀHw)``, i.e. ``‖g_j‖·‖d‖`` for MGDA, plus ``|c_j| + |cᵀw|``), plus the
    float64 rounding floor of ``(Hw)_j`` (``1e-14·sqrt(H_jj)·Σ_i sqrt(H_ii) w_i``). Invariant under ``H, c → sH, sc``
    and relative per task, so a tiny gradient's multiplier is not swamped by a large one's scale."""
    dh = np.sqrt(np.clip(np.diag(H), 0.0, None))
    wHw = max(float(w @ H @ w), 0.0)
    floor = 1e-14 * dh * float(dh @ np.abs(w))
    return tol * (dh * np.sqrt(wHw) + np.abs(c) + abs(float(c @ w))) + floor + 1e-300


def _kkt_holds(H: np.ndarray, c: np.ndarray, w: np.ndarray, tol: float) -> bool:
    grad = H @ w + c
    S = w > 0
    if not S.any():
        return False
    mu = float(grad[S] @ w[S])
    return bool(np.all(grad - mu >= -_kkt_tolerance(H, c, w, tol)))


def _face_solve(H: np.ndarray, c: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Minimiser of ``½wᵀHw + cᵀw`` on the affine hull ``{Σ w = 1, w_j = 0 for j ∉ idx}`` (KKT system).

    The KKT matrix is equilibrated symmetrically by ``1/sqrt(H_ii)`` before the LU solve, so that indices whose
    ``H_ii`` differ by 1e12 are solved to full relative accuracy; least squares when it is singular."""
    m = idx.size
    Hs = H[np.ix_(idx, idx)]
    dh = np.sqrt(np.clip(np.diag(Hs), 0.0, None))
    e = np.where(dh > 0, 1.0 / np.where(dh > 0, dh, 1.0), 1.0)
    e_last = 1.0 / float(np.max(e))
    kkt = np.empty((m + 1, m + 1))
    kkt[:m, :m] = Hs * e[:, None] * e[None, :]
    kkt[:m, m] = e * e_last
    kkt[m, :m] = e * e_last
    kkt[m, m] = 0.0
    rhs = np.concatenate([-c[idx] * e, [e_last]])
    try:
        y = np.linalg.solve(kkt, rhs)
        if not np.all(np.isfinite(y)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        y = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    return y[:m] * e


def qp_simplex_enumerate(H: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact minimiser of ``½wᵀHw + cᵀw`` over the simplex by enumerating its ``2^K − 1`` faces (PSD ``H``).

    On each face the stationary point of the KKT system is a candidate when it is feasible (``w >= 0``); the
    candidate with the lowest objective wins (the minimiser is the stationary point of the face whose relative
    interior holds it). Cost ``O(2^K K³)``: meant for K <= 4 and as the fall-back check of :func:`qp_simplex`.
    """
    K = H.shape[0]
    best_w, best_f = None, math.inf
    for mask in range(1, 1 << K):
        idx = np.flatnonzero([(mask >> i) & 1 for i in range(K)])
        x = _face_solve(H, c, idx)
        if not np.all(np.isfinite(x)) or np.any(x < -1e-12 * max(1.0, float(np.abs(x).max()))):
            continue
        w = np.zeros(K)
        w[idx] = np.maximum(x, 0.0)
        tot = w.sum()
        if not tot > 0:
            continue
        w /= tot
        f = 0.5 * float(w @ H @ w) + float(c @ w)
        if f < best_f:
            best_w, best_f = w, f
    if best_w is None:  # cannot happen for finite input (every vertex is feasible); keep a defined answer
        best_w = np.full(K, 1.0 / K)
    return best_w


def min_linear_plus_norm(
    A: np.ndarray, b: np.ndarray, s: float, w0: np.ndarray | None = None, tol: float = 1e-10, max_iter: int = 2000
) -> np.ndarray:
    """``argmin_{w∈Δ} wᵀb + s·sqrt(wᵀAw)`` (``s >= 0``, ``A`` PSD).

    This is CAGrad's dual (``b = A·1/K``, ``s = c‖g0‖``) and IMGrad's Eq. 11 (both terms reweighted).
    K = 2 has a closed form: with ``w = (t, 1−t)`` the objective is ``p·t + s·sqrt(q(t))`` (plus a constant)
    with ``q`` a convex quadratic; its stationary point solves a quadratic equation, and convexity makes the
    clipped stationary point (or the better end point) the minimiser. K <= :data:`ENUMERATE_MAX_K` enumerates
    the faces of the simplex (:func:`_enumerate_linear_plus_norm`, exact). Larger K uses a sequential QP
    (projected Newton) whose subproblems :func:`qp_simplex` solves exactly, stopped by a per-task relative
    Frank-Wolfe test, from the warm start ``w0`` and, when that does not reach the test, from the uniform point.

    Scale: ``A, b`` are divided by ``max_i A_ii`` and ``s`` by its square root, so ``(A, b, s) → (t²A, t²b, ts)``
    (the problem of ``tG``) gives the same ``w``.
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
    if K <= ENUMERATE_MAX_K and sn > 0.0:
        return _enumerate_linear_plus_norm(An, bn, sn, fun)
    return _sqp_linear_plus_norm(An, bn, sn, fun, w0, tol, max_iter)


def _enumerate_linear_plus_norm(
    A: np.ndarray, b: np.ndarray, s: float, fun: Callable[[np.ndarray], float]
) -> np.ndarray:
    """Exact ``argmin_{w∈Δ} wᵀb + s·sqrt(wᵀAw)`` by enumerating faces (``s > 0``, small K).

    On the face ``S`` with ``ρ = sqrt(wᵀAw) > 0`` stationarity reads ``b_S + s·A_SS w_S/ρ = μ1``. With
    ``x = A_SS⁻¹1``, ``y = A_SS⁻¹b_S``: ``w_S = (μx − y)/(μ·1ᵀx − 1ᵀy)`` (from ``Σ w = 1``), and ``wᵀAw = ρ²``
    gives ``μ²·1ᵀx − 2μ·1ᵀy + b_Sᵀy − s² = 0``. Feasible roots (``ρ > 0``, ``w_S >= 0``) and the vertices are the
    candidates; the objective is convex, so the best candidate is the minimiser. ``A_SS`` is solved through
    the cosine matrix (``A_SS = D C D``), exact when the norms differ by many decades.
    """
    K = A.shape[0]
    C, n = correlation(A)
    best_w, best_f = None, math.inf
    for i in range(K):
        w = np.zeros(K)
        w[i] = 1.0
        f = fun(w)
        if f < best_f:
            best_w, best_f = w, f
    for mask in range(3, 1 << K):
        idx = np.flatnonzero([(mask >> i) & 1 for i in range(K)])
        if idx.size < 2 or np.any(n[idx] <= 0):
            continue
        ns = n[idx]
        try:
            z = np.linalg.solve(C[np.ix_(idx, idx)], np.stack([1.0 / ns, b[idx] / ns], axis=1))
        except np.linalg.LinAlgError:
            continue
        x, y = z[:, 0] / ns, z[:, 1] / ns
        p, q = float(x.sum()), float(y.sum())
        r = float(b[idx] @ y) - s * s
        disc = q * q - p * r
        if not (p != 0.0 and disc >= 0.0 and math.isfinite(disc)):
            continue
        root = math.sqrt(disc)
        # both roots of p μ² − 2 q μ + r = 0, written without cancellation
        big = q + math.copysign(root, q) if q != 0 else root
        roots = [big / p] + ([r / big] if big != 0 else [-big / p])
        for mu in roots:
            den = mu * p - q
            if not den > 0:
                continue
            ws = (mu * x - y) / den
            if np.any(ws < 0):
                continue
            w = np.zeros(K)
            w[idx] = ws
            w /= w.sum()
            f = fun(w)
            if f < best_f:
                best_w, best_f = w, f
    return best_w


def _sqp_linear_plus_norm(
    A: np.ndarray,
    b: np.ndarray,
    s: float,
    fun: Callable[[np.ndarray], float],
    w0: np.ndarray | None,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """Sequential QP (projected Newton) from ``w0`` (else uniform); if that run does not reach the stopping test,
    a second run from the uniform point, and the better of the two."""
    w, ok = _sqp_run(A, b, s, fun, w0, tol, max_iter)
    if ok or w0 is None:
        return w
    w2, _ = _sqp_run(A, b, s, fun, None, tol, max_iter)
    return w2 if fun(w2) < fun(w) else w


def _sqp_run(
    A: np.ndarray,
    b: np.ndarray,
    s: float,
    fun: Callable[[np.ndarray], float],
    w0: np.ndarray | None,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, bool]:
    """One SQP run: each step minimises the exact second-order model on the simplex with :func:`qp_simplex`, then
    an Armijo line search. Stops when every Frank-Wolfe gap ``(∇f)_j − ∇fᵀw`` is above ``−tol`` times task
    ``j``'s own scale ``|b_j| + s·sqrt(A_jj) + |bᵀw|`` (relative per task: exact at any norm spread); a stall
    (no descent direction or no Armijo decrease left in float64) with gaps above ``−1e-8`` of that scale counts
    as converged. Returns ``(w, converged)``."""
    K = A.shape[0]
    dA = np.clip(np.diag(A), 0.0, None)
    ridge = np.diag(1e-9 * dA + 1e-300)  # relative to each task's own scale
    task_scale = np.abs(b) + s * np.sqrt(dA)
    w = np.full(K, 1.0 / K) if w0 is None else project_simplex(np.asarray(w0, dtype=np.float64))
    f = fun(w)
    for _ in range(max_iter // 10 + 20):
        Aw = A @ w
        rho = math.sqrt(max(float(w @ Aw), 0.0))
        if rho < 1e-150:
            return w, True  # at a Pareto-stationary point ‖g_w‖ = 0: the norm term is non-smooth there; w is optimal
        g = b + s * Aw / rho
        gw = float(g @ w)
        gap = float(np.min((g - gw) / (task_scale + abs(float(b @ w)) + 1e-300)))  # relative, per task
        if gap >= -tol:
            return w, True
        H = s * (A / rho - np.outer(Aw, Aw) / rho**3) + ridge
        wq = qp_simplex(H, g - H @ w, w0=w, tol=1e-12)
        p = wq - w
        slope = float(g @ p)
        if slope >= 0.0:
            return w, gap >= -_STALL_GAP
        step = 1.0
        while step > 1e-10:
            wn = w + step * p
            fn = fun(wn)
            if fn <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return w, gap >= -_STALL_GAP  # no decrease left in float64: converged if the gap is at that level
        wn = np.maximum(wn, 0.0)  # a convex combination of two simplex points: only rounding to remove
        w, f = wn / wn.sum(), fn
    return w, False


def qp_simplex(H: np.ndarray, c: np.ndarray, w0: np.ndarray | None = None, tol: float = 1e-12) -> np.ndarray:
    """Exact minimiser of ``½wᵀHw + cᵀw`` over the simplex for PSD ``H`` (primal active-set method).

    Works on the face ``{w_j = 0, j ∉ S}``: solves the equality-constrained KKT system there (equilibrated by
    ``1/sqrt(H_ii)`` as in :func:`_face_solve`), steps to the first blocking bound and drops it, or, when the
    face optimum is feasible, adds the index whose multiplier ``(Hw + c)_j − μ`` is most negative *relative to
    its tolerance* (:func:`_kkt_tolerance`: ``tol`` times that index's own scale); stops when none is below it
    (the KKT conditions hold). Starts from ``w0``, else from the projection onto the simplex of the minimiser
    over the whole affine hull (often already optimal: one solve), else from the best vertex. At most
    ``4K + 20`` iterations.
    """
    K = H.shape[0]
    dh = np.sqrt(np.clip(np.diag(H), 0.0, None))
    e = np.where(dh > 0, 1.0 / np.where(dh > 0, dh, 1.0), 1.0)
    Ht = H * e[:, None] * e[None, :]
    ct = c * e
    kkt_full = np.zeros((K + 1, K + 1))

    def face(idx: np.ndarray) -> np.ndarray:
        m = idx.size
        ei = e[idx]
        el = 1.0 / float(ei.max())
        kkt = kkt_full[: m + 1, : m + 1]
        kkt[:m, :m] = Ht if m == K else Ht[idx][:, idx]
        kkt[:m, m] = ei * el
        kkt[m, :m] = ei * el
        kkt[m, m] = 0.0
        rhs = np.empty(m + 1)
        rhs[:m] = -ct[idx]
        rhs[m] = el
        _, _, y, info = _dgesv(kkt, rhs)  # LAPACK LU solve without numpy.linalg's per-call overhead
        if info != 0 or not np.isfinite(y).all():
            y = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        return y[:m] * ei

    if w0 is not None and np.all(w0 >= 0) and float(np.sum(w0)) > 0:
        w = np.asarray(w0, dtype=np.float64) / float(np.sum(w0))
    else:
        x = face(np.arange(K))
        w = project_simplex(x) if np.isfinite(x).all() else np.zeros(K)
        if not w.sum() > 0:
            w = np.zeros(K)
            w[int(np.argmin(0.5 * np.diag(H) + c))] = 1.0
    S = w > 0
    tol_c = tol * np.abs(c) + 1e-300
    tol_dh, floor_dh = tol * dh, 1e-14 * dh
    for _ in range(4 * K + 20):
        idx = S.nonzero()[0]
        x = face(idx)
        xmin, xmax = float(x.min()), float(x.max())
        if xmin >= -1e-15 * max(xmax, -xmin):
            w = np.zeros(K)
            w[idx] = x if xmin >= 0 else np.maximum(x, 0.0)
            w /= w.sum()
            Hw = H @ w
            grad = Hw + c
            mu = float(grad @ w)
            cw = float(c @ w)
            wHw = max(mu - cw, 0.0)
            tolv = tol_dh * math.sqrt(wHw) + tol_c + tol * abs(cw) + floor_dh * float(dh @ w)
            viol = (grad - mu) / tolv
            viol[S] = np.inf
            j = int(np.argmin(viol))
            if viol[j] >= -1.0:
                return w
            S[j] = True
        else:
            p = x - w[idx]
            neg = p < 0
            ratios = np.full(idx.size, np.inf)
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
