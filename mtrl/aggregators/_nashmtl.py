"""Nash-MTL (Navon et al., "Multi-task learning as a bargaining game", ICML 2022, Eq. 2 and Alg. 1).

The Nash bargaining weights solve ``A α = 1/α`` (element-wise), ``α > 0``, with ``A = G Gᵀ``. The reference code
normalises ``A`` by its Frobenius norm ``n`` inside the program but keeps ``n`` in the constraints
``α_i (A/n · α)_i · n ≥ 1``, so its CCCP converges to the solution for the *unnormalised* ``A`` (checked in our
tests); we return that one with both solvers. Then ``‖Σ α_i g_i‖² = αᵀAα = K``.
The direction is ``Σ_i α_i g_i`` clipped to ``max_norm`` (the
reference clips the shared gradient norm to 1), then divided by K to put it on the mean-gradient scale
(multiply by K to recover the reference code's update exactly).

Scale-invariant form. Both solvers work in ``β = α∘n`` (``n_i = ‖g_i‖``) on the cosine matrix ``C = D⁻¹AD⁻¹``
(``D = diag(n)``, unit diagonal): ``Aα = 1/α  ⇔  Cβ = 1/β``. This system does not change when ``G`` is scaled,
globally or per task, so the solve is equally exact at any gradient scale and any norm spread
(``diag(1e-3, 1e-3, 1e3)`` gives ``α = (1e3, 1e3, 1e-3)``; in α-space the reference's solution spans six decades).

Two solvers of the same fixed point:

* ``solver="cccp"``: the reference concave-convex procedure - each of at most ``optim_niter`` iterations solves
  the convex program ``min Σ_i (Aα)_i + ∇φ(α_t)ᵀα  s.t.  α_i (Aα)_i ≥ 1`` (the reference's program: its
  normalisation by ``n = ‖A‖_F`` divides both objective terms) with cvxpy (Clarabel), written in β (the same
  program, variables well scaled), warm-started from the previous step's α. Two deliberate differences, both
  for scale invariance: the reference's weight of the first term against the linearisation grows in
  proportion to the gradient scale, we fix it at its value for ``‖A‖_F = 1``; the reference stops on
  ``‖A/n·α − 1/α‖ < 1e-3`` (units of the gradient scale), we stop on ``max_i |β_i(Cβ)_i − 1| < 1e-3`` or a
  relative change of β below 1e-6. The program is written in DPP form (the linearised objective is one
  parameter), so cvxpy compiles it once.
* ``solver="newton"`` (default): the fixed point is the unique minimiser of the strictly convex
  ``½βᵀCβ − Σ_i log β_i`` (gradient ``Cβ − 1/β``), found by damped Newton steps (a few K x K solves). Its
  stopping test is relative (every ``|β_i(Cβ)_i − 1|`` below 1e-10 plus its float64 rounding floor, or a Newton
  decrement at machine precision), so it does not report a failure after converging on ill-conditioned
  ``C``. It returns the CCCP's fixed point to ~1e-9 wherever the CCCP converges (tested), ~100 times faster;
  the CCCP stays available for reproducing the reference, failures included (its linearised subproblem can be
  unbounded when gradients conflict, and the reference then keeps the previous α).

Failures are never skipped silently, and counted only when a solve really failed: a solver error, non-finite
β, β diverging past 1e12, or a stalled line search with a residual above 1e-6. When 0 lies in the convex hull
of the gradients (a Pareto-stationary point: a zero gradient, or the min-norm point of the *unit* gradients has
squared norm <= 1e-14; tested on ``C``, so independent of the norms) no solution exists and the solve fails
(``stats["pareto_stationary"] = 1``). On failure the previous step's α is reused (the reference behaviour;
``stats["solver_fallback"] = 1``), or ``1/sqrt(‖A‖_F)`` for every task at the first step (``= 2``);
``n_solver_failures`` is incremented and ``stats["solver_failed"] = 1``. A CCCP that runs out of iterations
before converging is used as the reference uses it, and reported as ``stats["solver_converged"] = 0``.
``stats["solver_residual"]`` is ``max_i |β_i(Cβ)_i − 1|`` of the returned solve.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from mtrl.aggregators._base import GramWeighting, Stats
from mtrl.aggregators._diagnostics import Context
from mtrl.aggregators._solvers import correlation, min_norm_weights

_SOLVERS = ("cccp", "newton")


class NashMTL(GramWeighting):
    """Nash bargaining weights (see module docstring).

    Args:
        solver: ``"newton"`` (default, exact K-space Newton) or ``"cccp"`` (reference algorithm, cvxpy + Clarabel).
        max_norm: clip of the norm of ``Σ α_i g_i`` (reference 1.0; ``<= 0`` disables it).
        optim_niter: CCCP iterations per step (reference 20).
        update_weights_every: recompute α every this many calls (reference default 1).
    """

    name = "nashmtl"

    def __init__(
        self, solver: str = "newton", max_norm: float = 1.0, optim_niter: int = 20, update_weights_every: int = 1
    ) -> None:
        super().__init__()
        if solver not in _SOLVERS:
            raise ValueError(f"nashmtl: solver must be one of {_SOLVERS}, got {solver!r}")
        if not (isinstance(optim_niter, int) and optim_niter >= 1):
            raise ValueError(f"nashmtl: optim_niter must be an int >= 1, got {optim_niter!r}")
        if not (isinstance(update_weights_every, int) and update_weights_every >= 1):
            raise ValueError(f"nashmtl: update_weights_every must be an int >= 1, got {update_weights_every!r}")
        self.solver = solver
        self.max_norm = float(max_norm)
        self.optim_niter = optim_niter
        self.update_weights_every = update_weights_every
        self._alpha: np.ndarray | None = None
        self._step = 0
        self._problem: Any = None
        self._converged = True

    # ------------------------------------------------------------------ weights
    def weights_from_gram(self, ctx: Context, losses: np.ndarray | None) -> tuple[np.ndarray, Stats]:
        K = ctx.K
        A = ctx.gram
        if self._alpha is None or self._alpha.shape[0] != K:
            self._alpha = None
        stats: Stats = {"solver_failed": 0.0, "solver_converged": 1.0, "pareto_stationary": 0.0, "solver_fallback": 0.0}
        if self._alpha is None or self._step % self.update_weights_every == 0:
            C, n = correlation(A)
            beta, ok, iters, resid = None, False, 0, math.inf
            if np.all(n > 0) and np.all(np.isfinite(C)):
                solve = self._solve_newton if self.solver == "newton" else self._solve_cccp
                beta, ok, iters, resid = solve(C, n)
            stats["solver_iters"] = float(iters)
            stats["solver_residual"] = float(resid)
            if ok and beta is not None:
                self._alpha = beta / n
                stats["solver_converged"] = float(self._converged)
            else:
                self.n_solver_failures += 1
                stats["solver_failed"] = 1.0
                stats["pareto_stationary"] = float(_pareto_stationary(C, n))
                stats["solver_fallback"] = 1.0 if self._alpha is not None else 2.0
                if self._alpha is None:
                    nf = float(np.linalg.norm(A))
                    self._alpha = np.ones(K) / math.sqrt(nf) if nf > 0 and math.isfinite(nf) else np.ones(K)
        self._step += 1
        alpha = self._alpha
        d_norm = math.sqrt(max(float(alpha @ A @ alpha), 0.0))
        clip = self.max_norm / d_norm if (self.max_norm > 0 and d_norm > self.max_norm) else 1.0
        stats["alpha_sum"] = float(alpha.sum())
        # the reference backpropagates Σ α_i L_i and clips the *shared* gradient afterwards: its heads get the
        # unclipped α_i ∇L_i (AggregatorResult.loss_weights, read by head_grads=weighted)
        stats["loss_weights"] = alpha / K
        return alpha * clip / K, stats

    def _warm_beta(self, n: np.ndarray) -> np.ndarray:
        """Warm start in the scaled variables ``β = α∘n`` (the previous step's α), else ``β = 1``."""
        if self._alpha is not None and np.all(self._alpha > 0) and np.all(np.isfinite(self._alpha)):
            return self._alpha * n
        return np.ones(n.shape[0])

    def _solve_newton(self, C: np.ndarray, n: np.ndarray) -> tuple[np.ndarray | None, bool, int, float]:
        """Damped Newton on ``f(β) = ½βᵀCβ − Σ log β`` (gradient ``Cβ − 1/β``), ``C`` the cosine matrix.

        Converged when every residual ``|β_i(Cβ)_i − 1|`` is below ``1e-10`` plus its float64 rounding floor
        ``1e-15·β_i(|C|β)_i`` (and below 1e-6), or when the residual is below 1e-6 and the Newton step moves
        no ``β_i`` by more than 1e-9 relative (a plateau at float64 precision), or when the Newton decrement
        ``λ² = −∇fᵀΔβ`` is below ``1e-20·K`` (f cannot be decreased further in float64) with a residual below
        1e-6. A line search that stalls counts as converged when the residual is below 1e-6, else as a failure;
        ``β`` growing past 1e12 is a failure (no solution: 0 is, to float64 precision, in the hull of the unit
        gradients).
        Steps are damped by an Armijo search on f, except once the predicted decrease is below f's float64
        resolution (``1e-12·(1+|f|)``): the Armijo test then compares rounding noise (the cause of the
        reference-era failures "after converging") and the full Newton step is taken.
        Returns ``(β, ok, iterations, max residual)``."""
        K = C.shape[0]
        beta = self._warm_beta(n)
        absC = np.abs(C)

        def obj(x: np.ndarray) -> float:
            return 0.5 * float(x @ C @ x) - float(np.sum(np.log(x)))

        f = obj(beta)
        resid = math.inf
        for it in range(1, 61):
            Cb = C @ beta
            r = beta * Cb - 1.0
            resid = float(np.max(np.abs(r)))
            if resid <= 1e-6 and np.all(np.abs(r) <= 1e-10 + 1e-15 * beta * (absC @ beta)):
                self._converged = True
                return beta, True, it, resid
            g = Cb - 1.0 / beta
            H = C + np.diag(1.0 / beta**2)
            try:
                step = -np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                return None, False, it, resid
            slope = float(g @ step)
            if resid <= 1e-6 and float(np.max(np.abs(step) / beta)) <= 1e-9:
                self._converged = True  # the iterate no longer moves at float64 precision (residual plateau)
                return beta, True, it, resid
            if -slope <= 1e-20 * K:  # no descent left in float64: converged if the residual says so, else stuck
                self._converged = resid <= 1e-6
                return (beta, True, it, resid) if resid <= 1e-6 else (None, False, it, resid)
            neg = step < 0
            t = min(1.0, 0.99 * float(np.min(-beta[neg] / step[neg]))) if np.any(neg) else 1.0
            # Armijo on f, except where the predicted decrease is below f's float64 resolution (the last, quadratically
            # convergent steps): there f cannot rank the points and the Newton step is taken as is
            exact_step = -slope <= 1e-12 * (1.0 + abs(f))
            while t > 1e-12:
                xn = beta + t * step
                fn = obj(xn)
                if exact_step or fn <= f + 1e-4 * t * slope:
                    break
                t *= 0.5
            else:
                if resid <= 1e-6:
                    self._converged = True
                    return beta, True, it, resid
                return None, False, it, resid
            beta, f = xn, fn
            if not np.all(np.isfinite(beta)) or float(np.max(beta)) > 1e12:
                return None, False, it, resid  # diverging: no bargaining solution (Pareto-stationary point)
        return None, False, 60, resid

    def _build_cccp(self, K: int) -> None:
        import cvxpy as cp

        beta = cp.Variable(K, nonneg=True)
        C = cp.Parameter((K, K))
        # The reference objective Σ_i (Aα)_i + ∇φ(α_prev)ᵀα / n is linear in α (β): its coefficient vector is
        # computed outside, one parameter, so that the program is DPP.
        c = cp.Parameter(K)
        Cb = C @ beta
        cons = [-cp.log(beta[i]) - cp.log(Cb[i]) <= 0 for i in range(K)]
        prob = cp.Problem(cp.Minimize(c @ beta), cons)
        self._problem = (prob, beta, C, c, K)
        # compile (DPP canonicalisation) and solve once on a fixed input, so that every later solve goes through
        # the same cached path: a resumed run then reproduces an uninterrupted one bit for bit
        C.value, c.value = np.eye(K), np.full(K, 3.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob.solve(solver=cp.CLARABEL)

    def _objective_weights(self) -> tuple[float, float]:
        """Weights of the two terms of the CCCP objective, ``Σ_i g_iᵀGα`` and ``φ`` (1, 1 for Nash-MTL)."""
        return 1.0, 1.0

    def _solve_cccp(self, C: np.ndarray, n: np.ndarray) -> tuple[np.ndarray | None, bool, int, float]:
        """The reference CCCP, in the scaled variables ``β = α∘n`` (see module docstring): the same sequence of
        convex programs, with constraints ``β_i(Cβ)_i ≥ 1`` that no longer depend on the gradient scale."""
        import cvxpy as cp

        K = C.shape[0]
        if _pareto_stationary(C, n):
            return None, False, 0, math.inf  # no bargaining solution: do not run 20 conic solves for nothing
        if self._problem is None or self._problem[-1] != K:
            self._build_cccp(K)
        prob, beta_v, C_p, c_p, _ = self._problem
        C_p.value = C
        w_push, w_phi = self._objective_weights()
        # ∂/∂β Σ_i (Aα)_i = ∂/∂β nᵀCβ, divided by sqrt(‖A‖_F): the reference's weight of this term against the
        # linearisation grows in proportion to the gradient scale; fixing it at its value for ‖A‖_F = 1 makes
        # the iteration scale-invariant (same fixed point)
        push = C @ n / math.sqrt(float(np.linalg.norm(C * np.outer(n, n))))
        b_t = self._warm_beta(n)
        ok = False
        it = 0
        for it in range(1, self.optim_niter + 1):
            b_t = np.maximum(np.abs(b_t), 1e-12)
            Cb = C @ b_t  # may have negative entries (conflicts): the linearisation is still a linear objective
            with np.errstate(divide="ignore", invalid="ignore"):
                lin = 1.0 / b_t + (1.0 / Cb) @ C  # ∇_β φ(β_t)
            if not np.all(np.isfinite(lin)):
                return None, False, it, math.inf  # (Cβ)_i = 0: the linearisation of log((Cβ)_i) does not exist
            coef = w_push * push + w_phi * lin
            coef = coef / max(float(np.max(np.abs(coef))), 1e-300)  # a positive factor: same minimiser
            c_p.value = coef
            beta_v.value = b_t
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "solution may be inaccurate": reported through the status
                    prob.solve(solver=cp.CLARABEL, warm_start=True)
            except (cp.error.SolverError, ValueError, ArithmeticError):
                return None, False, it, math.inf
            new = beta_v.value
            if new is None or prob.status not in ("optimal", "optimal_inaccurate") or not np.all(np.isfinite(new)):
                return None, False, it, math.inf
            resid = float(np.max(np.abs(new * (C @ new) - 1.0)))
            converged = resid < 1e-3 or float(np.linalg.norm(new - b_t)) < 1e-6 * float(np.linalg.norm(b_t))
            b_t = new
            if converged:
                ok = True
                break
        # the reference accepts the last iterate after optim_niter iterations; so do we, if it is usable
        self._converged = ok
        resid = float(np.max(np.abs(b_t * (C @ b_t) - 1.0)))
        ok = ok or bool(np.all(b_t > 0))
        return b_t, ok, it, resid

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "alpha": None if self._alpha is None else self._alpha.tolist(),
            "step": self._step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        a = state.get("alpha")
        self._alpha = None if a is None else np.asarray(a, dtype=np.float64)
        self._step = int(state.get("step", 0))


#: ``‖Σ_i w_i g_i/‖g_i‖‖²`` at or below which 0 counts as in the hull of the unit gradients (float64 cosines carry
#: ~1e-16 absolute error, so a squared min-norm of 1e-14 is indistinguishable from 0)
PARETO_TOL = 1e-14


def _pareto_stationary(C: np.ndarray, n: np.ndarray) -> bool:
    """Whether 0 is in the convex hull of the gradients (then ``Aα = 1/α`` has no solution): a zero gradient, or a
    min-norm point of the *unit* gradients (cosine matrix ``C``) of squared norm <= :data:`PARETO_TOL`. Testing
    the unit gradients makes the test independent of the norms (the old test, ``‖g_m‖² ≤ 1e-12·max‖g_i‖²``,
    declared ``diag(1e-3, 1e-3, 1e3)`` stationary)."""
    if np.any(n <= 0):
        return True
    w = min_norm_weights(C)
    return float(w @ C @ w) <= PARETO_TOL
