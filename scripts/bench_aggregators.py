"""Time every aggregator on a K x P gradient matrix: the K-space weight solve alone and the whole call.

    python scripts/bench_aggregators.py --K 10 --P 100000 --repeats 50

Prints medians over ``--windows`` windows (these machines are noisy) and the ratio of each whole call to ``ls``.
The whole call includes the Gram matrix (one K x P x K product) and the diagnostics (one MGDA solve); every
method gets the same positive per-task losses (the loss-based ones need them; the others ignore them).
"""

from __future__ import annotations

import argparse
import statistics
import time

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
    args = ap.parse_args()
    if args.K < 1 or args.P < 1 or args.repeats < 1 or args.windows < 1:
        raise SystemExit("bench_aggregators: error: K, P, repeats and windows must be >= 1")
    torch.manual_seed(0)
    # imbalanced, partly conflicting gradients, drifting a little from call to call as in training
    base = torch.randn(args.K, args.P) * torch.logspace(0, 1.5, args.K)[:, None]
    losses = torch.rand(args.K) + 0.5  # positive, as the loss-based methods (si, uw, dwa, igb*) expect
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


if __name__ == "__main__":
    main()
