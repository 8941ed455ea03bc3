"""CelebA single-task bases from 40 single-task runs (FAMO's ``experiments/celeba/trainer_one_task.py`` protocol).

    python scripts/celeba_stl_bases.py <root> [--out bases.json]

Reads every CelebA run under ``root`` whose ``resolved_config.yaml`` has ``aggregator: stl`` (one run per
attribute, ``aggregator_kwargs.task=<i>``; the command is in docs/reference-supervised.md) and takes, for task
``i``, its test F1 at the epoch with the best validation F1 *of that attribute* (FAMO's one-task trainer selects
by the single task's validation F1). Prints the 40 bases beside FAMO's published ones and writes them as JSON
(``{"f1/<attribute>": F1}``) for ``scripts/supervised_summary.py --celeba-bases``. Every attribute needs a run; a
missing one is named and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from mtrl.supervised.evaluation import best_validation_record
from mtrl.supervised.metrics import CELEBA_STL_F1
from mtrl.supervised.synthetic import CELEBA_ATTRIBUTES


def collect(root: Path) -> dict[int, dict]:
    """``{task index: {"dir", "epoch", "f1"}}`` of the single-task CelebA runs under ``root``."""
    found: dict[int, dict] = {}
    for path in sorted(root.rglob("metrics.jsonl")):
        cfg_path = path.parent / "resolved_config.yaml"
        if not cfg_path.exists():
            continue
        cfg = OmegaConf.load(cfg_path)
        if cfg.get("aggregator") != "stl" or OmegaConf.select(cfg, "benchmark.name") != "celeba":
            continue
        task = int(OmegaConf.select(cfg, "aggregator_kwargs.task", default=0))
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        attr = CELEBA_ATTRIBUTES[task]
        rec = best_validation_record(records, f"f1/{attr}")
        if task in found:
            raise SystemExit(f"celeba_stl_bases: error: two runs for task {task} ({attr}): "
                             f"{found[task]['dir']} and {path.parent}")  # fmt: skip
        found[task] = {"dir": str(path.parent), "epoch": int(rec["epoch"]), "f1": float(rec["test"][f"f1/{attr}"])}
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    found = collect(args.root)
    missing = [f"{i} ({a})" for i, a in enumerate(CELEBA_ATTRIBUTES) if i not in found]
    print("| task | attribute | best-val epoch | test F1 | FAMO's published | difference |")
    print("|---|---|---|---|---|---|")
    for i, a in enumerate(CELEBA_ATTRIBUTES):
        if i in found:
            f, ref = found[i]["f1"], CELEBA_STL_F1[i]
            print(f"| {i} | {a} | {found[i]['epoch']} | {f:.4f} | {ref:.4f} | {f - ref:+.4f} |")
    if missing:
        print(f"celeba_stl_bases: error: no single-task run for {len(missing)} attribute(s): {', '.join(missing)}",
              file=sys.stderr)  # fmt: skip
        return 2
    bases = {f"f1/{a}": found[i]["f1"] for i, a in enumerate(CELEBA_ATTRIBUTES)}
    if args.out:
        args.out.write_text(json.dumps(bases, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
