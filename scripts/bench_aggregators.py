"""Time every aggregator on a K x P gradient matrix: the K-space weight solve alone and the whole call.

    python scripts/bench_aggregators.py --K 10 --P 100000 --repeats 50

Prints medians over ``--windows`` windows (these machines are noisy) and the ratio of each whole call to ``ls``.
The whole call includes the Gram matrix (one K x P x K product) and the diagnostics (one MGDA solve); every
method gets the same positive per-task losses (the loss-based ones need them; the others ignore them).

    python scripts/bench_aggregators.py --K 10 --P 700000 --compare a05bdd1

``--compare REF`` instead times each method's own work against the aggregators of git revision ``REF`` (its
``mtrl/aggregators`` is extracted with ``git archive`` and imported side by side as ``mtrl_ref``), interleaved
in the same windows on the same matrices: the K-space weight solve alone (``weights_from_gram`` on a cached Gram
matrix, a fresh context each call so that the MGDA point behind ``cosθ`` is solved too) and the method's step
after the Gram matrix (``solver_ms``: that solve plus the P-sized ``wᵀG``, or the whole method for those that
are not Gram weightings). The threshold wrapper is timed as a whole call (it has no step of its own).
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from mtrl.aggregators import AGGREGATORS, make_aggregator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--P", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--methods", nargs="*", default=sorted(AGGREGATORS))
    ap.add_argument("--gram", action="store_true", help="also time the float64 Gram: blocked vs converting G first")
    ap.add_argument("--compare", metavar="REF", help="time each method's own step against git revision REF")
    args = ap.parse_args()
    if args.K < 1 or args.P < 1 or args.repeats < 1 or args.windows < 1:
        raise SystemExit("bench_aggregators: error: K, P, repeats and windows must be >= 1")
    torch.manual_seed(0)
    # imbalanced, partly conflicting gradients, drifting a little from call to call as in training
    base = torch.randn(args.K, args.P) * torch.logspace(0, 1.5, args.K)[:, None]
    losses = torch.rand(args.K) + 0.5  # positive, as the loss-based methods (si, uw, dwa, igb*) expect
    if args.compare:
        compare(base, losses, args)
        return
    results = {}
    for name in args.methods:
        try:
            agg = make_aggregator(name)
        except ValueError as e:
            raise SystemExit(f"bench_aggregators: error: {e}") from None
        agg(base, losses=losses)
        solve, total = [], []
        for _ in range(args.windows):
            s_ms, t0 = [], time.perf_counter()
            for r in range(args.repeats):
                res = agg(base + 0.05 * r * torch.randn(1, args.P), losses=losses * (1 - 1e-3 * r))
                s_ms.append(float(res.stats.get("solver_ms", float("nan"))))
            total.append((time.perf_counter() - t0) / args.repeats * 1e3)
            solve.append(statistics.median(s_ms))
        results[name] = (statistics.median(solve), statistics.median(total))
    ls_total = results.get("ls", (1.0, 1.0))[1]
    print(f"K={args.K} P={args.P} torch threads={torch.get_num_threads()} (median of {args.windows} windows)")
    print(f"{'method':15s} {'K-space solve ms':>17s} {'whole call ms':>14s} {'call / ls':>10s}")
    for name, (s, t) in results.items():
        print(f"{name:15s} {s:17.3f} {t:14.3f} {t / ls_total:10.2f}")
    if args.gram:
        bench_gram(base, args)


def bench_gram(G: torch.Tensor, args: argparse.Namespace) -> None:
    """The float64 Gram matrix as mtrl computes it (column blocks) against converting the whole of G to float64
    first, and the separate NaN/Inf pass over G it replaces; interleaved, median of ``--windows`` windows."""
    from mtrl.aggregators._diagnostics import f64_matmul

    def converted() -> None:
        g = G.double()
        g @ g.T

    variants = {"blocked f64": lambda: f64_matmul(G), "converted f64": converted,
                "isfinite(G) pass": lambda: bool(torch.isfinite(G).all())}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.windows):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                fn()
            times[k].append((time.perf_counter() - t0) / args.repeats * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"gram: {k:17s} {v:8.2f} ms")
    print(f"ratio blocked/converted: {med['blocked f64'] / med['converted f64']:.2f}")


def load_revision(ref: str) -> ModuleType:
    """Import ``mtrl/aggregators`` of git revision ``ref`` as the package ``mtrl_ref.aggregators``."""
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(["git", "archive", ref, "mtrl/aggregators"], cwd=root, capture_output=True, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ref_"))
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as tf:
        tf.extractall(tmp, filter="data")
    (tmp / "mtrl").rename(tmp / "mtrl_ref")
    (tmp / "mtrl_ref" / "__init__.py").write_text("")
    for f in (tmp / "mtrl_ref" / "aggregators").glob("*.py"):
        f.write_text(f.read_text().replace("mtrl.aggregators", "mtrl_ref.aggregators"))
    sys.path.insert(0, str(tmp))
    import mtrl_ref.aggregators as ref_pkg

    return ref_pkg


def _timers(pkg: ModuleType, name: str, mats: list[torch.Tensor], grams: list[np.ndarray], losses: torch.Tensor
            ) -> tuple[Any, Any]:  # fmt: skip
    """Two closures timing one pass over ``mats``: the K-space weight solve alone (None for methods that are not
    Gram weightings) and the method's step after the Gram matrix."""
    base_mod = sys.modules[pkg.__name__ + "._base"]
    ctx_cls = sys.modules[pkg.__name__ + "._diagnostics"].Context
    agg = pkg.make_aggregator(name)
    agg.seed(0)
    L_np = losses.double().numpy()
    whole = type(agg).__call__ is not base_mod.Aggregator.__call__  # wrappers (threshold): whole call

    def contexts() -> list[Any]:
        out = []
        for G, A in zip(mats, grams):
            ctx = ctx_cls(G)
            ctx._gram = A
            out.append(ctx)
        return out

    def step() -> float:
        ctxs = contexts()
        t0 = time.perf_counter()
        for G, ctx in zip(mats, ctxs):
            agg(G, losses=losses) if whole else agg._aggregate(ctx, losses)
        return (time.perf_counter() - t0) / len(mats) * 1e3

    def solve(reps: int = 1) -> float:
        ctxs = [c for _ in range(reps) for c in contexts()]
        gc.collect()
        gc.disable()  # a collection pass over thousands of contexts would dominate microsecond solves
        try:
            t0 = time.perf_counter()
            for ctx in ctxs:
                agg.weights_from_gram(ctx, L_np)
            return (time.perf_counter() - t0) / len(ctxs) * 1e3
        finally:
            gc.enable()

    is_gram = isinstance(agg, base_mod.GramWeighting) and not whole
    return (solve if is_gram else None), step


def compare(base: torch.Tensor, losses: torch.Tensor, args: argparse.Namespace) -> None:
    """Each method's own step, this working tree against ``args.compare``, interleaved (see module docstring)."""
    from mtrl.aggregators._diagnostics import f64_matmul

    ref_pkg = load_revision(args.compare)
    import mtrl.aggregators as new_pkg

    gen = torch.Generator().manual_seed(1)
    mats = [base + 0.05 * r * torch.randn(1, args.P, generator=gen) for r in range(args.repeats)]
    grams = []
    for G in mats:
        A = f64_matmul(G).numpy()
        grams.append(0.5 * (A + A.T))
    methods = [m for m in args.methods if m in ref_pkg.AGGREGATORS]
    cols = ("solve ref", "solve new", "new/ref", "step ref", "step new", "new/ref")
    head = f"{'method':15s} " + " ".join(f"{c:>10s}" for c in cols)
    print(f"K={args.K} P={args.P} torch threads={torch.get_num_threads()}; ref = {args.compare}; ms per call,")
    print(f"median of {args.windows} windows x {args.repeats} matrices, ref and new interleaved")
    print("solve: K-space weight solve alone (weights_from_gram, fresh context: includes the MGDA point of cos theta)")
    print("step: the method's work after the Gram matrix (solver_ms: solve + w^T G; whole call for threshold)")
    print(head)
    worst = 0.0
    for name in methods:
        timers = {
            "ref": _timers(ref_pkg, name, mats, grams, losses),
            "new": _timers(new_pkg, name, mats, grams, losses),
        }
        for v in timers.values():  # warm-up (cvxpy compile, first-call state)
            v[1]()
        # solves of a few microseconds: repeat the pass over the matrices so that a window lasts >= ~50 ms
        first = timers["ref"][0]
        reps = 1 if first is None else max(1, min(500, int(50.0 / max(first() * len(mats), 1e-3))))
        res: dict[str, dict[str, list[float]]] = {v: {"solve": [], "step": []} for v in timers}
        for win in range(args.windows):
            for v in ("ref", "new") if win % 2 == 0 else ("new", "ref"):  # alternate which runs first
                solve, step = timers[v]
                if solve is not None:
                    res[v]["solve"].append(solve(reps))
                res[v]["step"].append(step())
        med = {v: {k: statistics.median(x) if x else float("nan") for k, x in d.items()} for v, d in res.items()}
        rs = med["new"]["solve"] / med["ref"]["solve"]
        rt = med["new"]["step"] / med["ref"]["step"]
        worst = max(worst, rt if rs != rs else max(rs, rt))
        vals = (med["ref"]["solve"], med["new"]["solve"], rs, med["ref"]["step"], med["new"]["step"], rt)
        print(f"{name:15s} " + " ".join(f"{v:10.4f}" for v in vals))
    print(f"largest new/ref ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
