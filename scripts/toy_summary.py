"""Summarise ``toy.csv`` (written by ``python -m mtrl.toy``) as one Markdown row per preset and method.

    python scripts/toy_summary.py benchmarks/results/toy/toy.csv

Columns: the final point from each start (in the order of SPEC §3), how many starts end on the Pareto front
(distance < 0.1), and the mean and minimum distance to the optimum of the mean, ``(0, −8.3552)``.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/toy_summary.py <toy.csv>")
    try:
        rows = list(csv.DictReader(open(sys.argv[1])))
    except OSError as e:
        raise SystemExit(f"toy_summary: error: {e}") from None
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["preset"], r["method"])].append(r)
    print("| preset | method | final points from the 5 starts | on front | mean / min dist. to optimum |")
    print("|---|---|---|---|---|")
    for (preset, method), rs in groups.items():
        pts = " ".join(f"({float(r['final_x1']):.1f}, {float(r['final_x2']):.1f})" for r in rs)
        front = sum(float(r["dist_front"]) < 0.1 for r in rs)
        dopt = [float(r["dist_opt"]) for r in rs]
        print(f"| {preset} | {method} | {pts} | {front}/{len(rs)} | {sum(dopt) / len(dopt):.2f} / {min(dopt):.2f} |")


if __name__ == "__main__":
    main()
