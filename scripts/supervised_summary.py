"""Table of supervised runs: per-task train-loss decline, the papers' test metrics and Δm%.

    python scripts/supervised_summary.py <root> [--reference ls] [--last-k 10] [--out f.md] [--celeba-bases b.json]

Reads every ``metrics.jsonl`` under ``root`` (one line per epoch, written by ``python -m mtrl.supervised.train``)
and prints, per benchmark and method: the train loss of each task in the last epoch as a fraction of the first
epoch's (below 1: it fell), the test metrics as the papers report them (``mtrl.supervised.evaluation``): NYUv2 and
CityScapes the mean of the last ``k`` epochs (default 10, the papers' protocol; the epochs used are printed with
each row), CelebA the test F1 at the epoch with the best mean validation F1; then Δm% against the single-task bases
(real data only: on synthetic data they mean nothing, ``-``) and Δm% relative to the ``--reference`` run of the
same benchmark (lower is better; the papers' formula with the reference's values as bases).
Runs are not averaged over seeds: one line per run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mtrl.supervised.evaluation import LAST_K, paper_summary
from mtrl.supervised.metrics import delta_m

METRICS = {
    "nyuv2": ["miou", "pix_acc", "abs_err", "rel_err", "normal_mean", "normal_median", "within_11_25",
              "within_22_5", "within_30"],
    "cityscapes": ["miou", "pix_acc", "abs_err", "rel_err"],
}  # fmt: skip
SHOWN = {"nyuv2": ["miou", "pix_acc", "abs_err", "normal_mean"], "cityscapes": ["miou", "pix_acc", "abs_err"],
         "celeba": ["f1_mean", "acc_mean"]}  # fmt: skip


def metrics_of(bench: str, test: dict) -> list[str]:
    """The metrics Δm% is taken over: the table's for the dense benchmarks, the 40 per-attribute F1 for CelebA."""
    if bench == "celeba":
        return sorted(k for k in test if k.startswith("f1/"))
    return METRICS.get(bench, [])


def read_runs(root: Path) -> list[dict]:
    runs = []
    for path in sorted(root.rglob("metrics.jsonl")):
        recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if recs:
            runs.append({"dir": path.parent, "records": recs})
    return runs


def summarise(run: dict, last_k: int, celeba_bases: dict | None = None) -> dict:
    recs = run["records"]
    first, last = recs[0]["train_loss"], recs[-1]["train_loss"]
    bench = recs[-1]["benchmark"]
    final = paper_summary(recs, bench, last_k, celeba_bases if bench == "celeba" else None)
    test = {m: final["test"][m] for m in [*SHOWN.get(bench, []), *metrics_of(bench, final["test"])]
            if m in final["test"]}  # fmt: skip
    used = final["epochs"]
    return {
        "benchmark": bench,
        # a run directory named differently from its method (e.g. igbv1_window16) labels a variant
        "method": recs[-1]["method"]
        if run["dir"].name in (recs[-1]["method"], "") or not run["dir"].name.startswith(recs[-1]["method"])
        else run["dir"].name,
        "epochs": recs[-1]["epoch"],
        "used": f"best {used[0]}" if final["selection"] == "best_val" else f"{used[0]}-{used[-1]}",
        "loss_ratio": {t: last[t] / first[t] for t in first},
        "test": test,
        "delta_m_stl": None if recs[-1].get("synthetic", False) else final["delta_m"],
        "skipped": int(recs[-1].get("skipped_updates", 0)),
        "iter_ms": float(np.mean([r.get("iter_ms", float("nan")) for r in recs])),
        "dir": str(run["dir"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--reference", default="ls")
    ap.add_argument("--last-k", type=int, default=LAST_K, help="epochs averaged (NYUv2/CityScapes; default 10)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--celeba-bases",
        type=Path,
        default=None,
        help="JSON of CelebA single-task F1 (scripts/celeba_stl_bases.py); default: FAMO's published",
    )
    args = ap.parse_args(argv)
    bases = json.loads(args.celeba_bases.read_text()) if args.celeba_bases else None
    runs = [summarise(r, args.last_k, bases) for r in read_runs(args.root)]
    if not runs:
        print(f"supervised_summary: error: no metrics.jsonl under {args.root}", file=sys.stderr)
        return 2
    lines = []
    for bench in sorted({r["benchmark"] for r in runs}):
        rows = [r for r in runs if r["benchmark"] == bench]
        ref = next((r for r in rows if r["method"] == args.reference), None)
        tasks = list(rows[0]["loss_ratio"])
        shown = [m for m in SHOWN.get(bench, []) if m in rows[0]["test"]]
        how = ("test F1 at the best-validation epoch" if bench == "celeba"
               else f"test metrics: mean of the last {args.last_k} epochs")  # fmt: skip
        lines.append(f"\n**{bench}** ({how}, the papers' protocol; loss: last/first epoch)\n")
        loss_cols = [f"{t} loss" for t in tasks] if len(tasks) <= 4 else ["mean task loss"]
        head = ["method", "epochs", "epochs used", *loss_cols, *shown, "Δm% (STL bases)", f"Δm% vs {args.reference}",
                "ms/iter"]  # fmt: skip
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in sorted(rows, key=lambda r: (r["method"] != args.reference, r["method"])):
            ms = metrics_of(bench, r["test"])
            if ref is not None and ms:
                bases = {m: ref["test"][m] for m in ms if abs(ref["test"].get(m, 0.0)) > 1e-12}
                dm = f"{delta_m(r['test'], bench, bases):+.1f}"
            else:
                dm = "-"
            stl = "-" if r["delta_m_stl"] is None else f"{r['delta_m_stl']:+.2f}"
            ratios = list(r["loss_ratio"].values())
            losses = [f"{v:.2f}" for v in ratios] if len(tasks) <= 4 else [f"{float(np.mean(ratios)):.2f}"]
            cells = [r["method"], str(r["epochs"]), r["used"], *losses]
            cells += [f"{r['test'][m]:.3f}" for m in shown] + [stl, dm, f"{r['iter_ms']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines).lstrip("\n") + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
