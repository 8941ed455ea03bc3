"""Summarise ``toy.csv`` files (written by ``python -m mtrl.toy``) as Markdown tables.

    python scripts/toy_summary.py benchmarks/results/toy/toy.csv                 # one row per preset and method
    python scripts/toy_summary.py --per-method benchmarks/results/toy_all/toy.csv more/toy.csv

Default: the final point from each start (in the order of SPEC §3), how many starts end on the Pareto front
(distance < 0.1), and the mean and minimum distance to the optimum of the mean, ``(0, −8.3552)``.
``--per-method``: one row per method, one column per preset with ``<on front>/<starts>, <mean distance>``
(the toy column of the method table in docs/aggregators.md); several files are read as one.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict


def _stats(rs: list[dict[str, str]]) -> tuple[int, float, float]:
    front = sum(float(r["dist_front"]) < 0.1 for r in rs)
    dopt = [float(r["dist_opt"]) for r in rs]
    return front, sum(dopt) / len(dopt), min(dopt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("csv", nargs="+")
    p.add_argument("--per-method", action="store_true", help="one row per method, presets as columns")
    args = p.parse_args()
    rows: list[dict[str, str]] = []
    for path in args.csv:
        try:
            with open(path) as f:
                rows += list(csv.DictReader(f))
        except OSError as e:
            raise SystemExit(f"toy_summary: error: {e}") from None
    if not rows or "dist_front" not in rows[0]:
        raise SystemExit("toy_summary: error: no toy.csv rows (expected the columns written by mtrl.toy)")
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["preset"], r["method"])].append(r)
    if args.per_method:
        presets = list(dict.fromkeys(pr for pr, _ in groups))
        methods = list(dict.fromkeys(m for _, m in groups))
        print("| method | " + " | ".join(f"{pr}: on front, mean dist." for pr in presets) + " |")
        print("|---|" + "---|" * len(presets))
        for m in methods:
            cells = []
            for pr in presets:
                rs = groups.get((pr, m))
                if rs is None:
                    cells.append("-")
                else:
                    front, mean, _ = _stats(rs)
                    cells.append(f"{front}/{len(rs)}, {mean:.2f}")
            print(f"| {m} | " + " | ".join(cells) + " |")
        return
    print("| preset | method | final points from the 5 starts | on front | mean / min dist. to optimum |")
    print("|---|---|---|---|---|")
    for (preset, method), rs in groups.items():
        pts = " ".join(f"({float(r['final_x1']):.1f}, {float(r['final_x2']):.1f})" for r in rs)
        front, mean, low = _stats(rs)
        print(f"| {preset} | {method} | {pts} | {front}/{len(rs)} | {mean:.2f} / {low:.2f} |")


if __name__ == "__main__":
    main()
