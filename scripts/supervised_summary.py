"""Table of supervised runs: per-task train-loss decline, final test metrics and Δm% against a reference method.

    python scripts/supervised_summary.py <root> [--reference ls] [--last-k 3] [--out summary.md]

Reads every ``metrics.jsonl`` under ``root`` (one line per epoch, written by ``python -m mtrl.supervised.train``)
and prints, per benchmark and method: the train loss of each task in the last epoch as a fraction of the first
epoch's (below 1: it fell), the test metrics averaged over the last ``k`` epochs, and Δm% of those metrics
relative to the ``--reference`` run of the same benchmark (lower is better; the papers' formula of SPEC §6 with
the reference's values as bases, since the STL bases of the real benchmarks mean nothing on synthetic data).
Runs are not averaged over seeds: one line per run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mtrl.supervised.metrics import delta_m

METRICS = {
    "nyuv2": ["miou", "pix_acc", "abs_err", "rel_err", "normal_mean", "normal_median", "within_11_25",
              "within_22_5", "within_30"],
    "cityscapes": ["miou", "pix_acc", "abs_err", "rel_err"],
}  # fmt: skip
SHOWN = {"nyuv2": ["miou", "pix_acc", "abs_err", "normal_mean"], "cityscapes": ["miou", "pix_acc", "abs_err"]}


def read_runs(root: Path) -> list[dict]:
    runs = []
    for path in sorted(root.rglob("metrics.jsonl")):
        recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if recs:
            runs.append({"dir": path.parent, "records": recs})
    return runs


def summarise(run: dict, last_k: int) -> dict:
    recs = run["records"]
    first, last = recs[0]["train_loss"], recs[-1]["train_loss"]
    tail = recs[-last_k:]
    bench = recs[-1]["benchmark"]
    test = {m: float(np.mean([r["test"][m] for r in tail])) for m in METRICS.get(bench, []) if m in tail[-1]["test"]}
    return {
        "benchmark": bench,
        # a run directory named differently from its method (e.g. igbv1_window16) labels a variant
        "method": recs[-1]["method"]
        if run["dir"].name in (recs[-1]["method"], "") or not run["dir"].name.startswith(recs[-1]["method"])
        else run["dir"].name,
        "epochs": recs[-1]["epoch"],
        "loss_ratio": {t: last[t] / first[t] for t in first},
        "test": test,
        "skipped": int(recs[-1].get("skipped_updates", 0)),
        "iter_ms": float(np.mean([r.get("iter_ms", float("nan")) for r in recs])),
        "dir": str(run["dir"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--reference", default="ls")
    ap.add_argument("--last-k", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    runs = [summarise(r, args.last_k) for r in read_runs(args.root)]
    if not runs:
        print(f"supervised_summary: error: no metrics.jsonl under {args.root}", file=sys.stderr)
        return 2
    lines = []
    for bench in sorted({r["benchmark"] for r in runs}):
        rows = [r for r in runs if r["benchmark"] == bench]
        ref = next((r for r in rows if r["method"] == args.reference), None)
        tasks = list(rows[0]["loss_ratio"])
        shown = [m for m in SHOWN.get(bench, []) if m in rows[0]["test"]]
        lines.append(f"\n**{bench}** (test metrics: mean of the last {args.last_k} epochs; loss: last/first epoch)\n")
        head = ["method", "epochs"] + [f"{t} loss" for t in tasks] + shown + [f"Δm% vs {args.reference}", "ms/iter"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in sorted(rows, key=lambda r: (r["method"] != args.reference, r["method"])):
            if ref is not None and bench in METRICS:
                bases = {m: ref["test"][m] for m in METRICS[bench] if abs(ref["test"].get(m, 0.0)) > 1e-12}
                dm = f"{delta_m(r['test'], bench, bases):+.1f}"
            else:
                dm = "-"
            cells = [r["method"], str(r["epochs"])] + [f"{r['loss_ratio'][t]:.2f}" for t in tasks]
            cells += [f"{r['test'][m]:.3f}" for m in shown] + [dm, f"{r['iter_ms']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines).lstrip("\n") + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
