"""SM and CARE trained as facebookresearch/mtrl trains them, against mtrl's own training: short MT10 runs.

    python benchmarks/sm_care_short.py run --out benchmarks/results/sm_care_short --seeds 1 2 --steps 600
    python benchmarks/sm_care_short.py summary --out benchmarks/results/sm_care_short

``reference``: ``experiment=sm_mt10`` / ``care_mt10`` as shipped (``agent.encoders=reference``, ``encoder_tau=0.05``,
``target_task_encoder=online``, CARE ``actor_attention=frozen``; docs/reference-sm-care.md). ``own``: the same
presets with those four keys at mtrl's defaults (``separate``, ``null``, ``target``, ``train``). Same seeds, the
same budget, one run at a time with one torch thread; a run whose last evaluation is there is skipped.

The budget is a smoke budget (``--steps`` per task, 150 random steps, 20 warm-up updates, then one update per
step): what it can show is how the options change the losses, the temperature, the cost of an update and the
first returns, not what they do to success after the reference's 2M steps. ``summary`` writes ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("sm", "care")
VARIANTS = {
    "reference": [],
    "own": ["agent.encoders=separate", "agent.encoder_tau=null", "agent.target_task_encoder=target",
            "agent.actor_attention=train"],
}  # fmt: skip


def _budget(steps: int) -> list[str]:
    return [f"train.steps_per_task={steps}", f"train.eval_every={max(1, steps // 4)}",
            "train.warmup_steps_per_task=150", "train.warmup_updates=20", f"train.checkpoint_every={steps}",
            "train.log_every=50"]  # fmt: skip


def _finished(run: Path, steps: int) -> bool:
    path = run / "eval.jsonl"
    if not path.is_file():
        return False
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return bool(lines) and lines[-1]["step"] >= steps


def cmd_run(args: argparse.Namespace) -> int:
    out, failed = Path(args.out), 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for seed in args.seeds:
        for arch in ARCHS:
            for variant, extra in VARIANTS.items():
                run = out / f"{arch}_{variant}" / f"seed_{seed}"
                if _finished(run, args.steps):
                    continue
                cmd = [sys.executable, "-m", "mtrl.train", f"experiment={arch}_mt10", f"seed={seed}",
                       *_budget(args.steps), *extra, "train.torch_threads=1", "train.progress=false",
                       f"hydra.run.dir={run}", f"resume={'true' if run.exists() else 'false'}"]  # fmt: skip
                t0 = time.perf_counter()
                rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
                failed += rc != 0
                print(f"{arch} {variant} seed {seed}: rc={rc} in {time.perf_counter() - t0:.0f} s", flush=True)
    return 1 if failed else 0


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def _mean_last(series: list[tuple[int, float]], n: int = 3) -> float:
    return statistics.fmean(v for _, v in series[-n:]) if series else float("nan")


def cmd_summary(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = []
    for arch in ARCHS:
        for variant in VARIANTS:
            for run in sorted((out / f"{arch}_{variant}").glob("seed_*")):
                if not (run / "eval.jsonl").is_file():
                    continue
                evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines() if x.strip()]
                sc = _scalars(run)
                alphas = [_mean_last(v) for k, v in sc.items() if k.startswith("train_tasks/") and k.endswith("alpha")]
                rows.append({
                    "arch": arch, "variant": variant, "seed": int(run.name.split("_")[1]),
                    "step": evals[-1]["step"],
                    "returns": [round(e["episode_return"], 1) for e in evals],
                    "success": evals[-1]["success_rate"],
                    "rollout_success": _mean_last(sc.get("rollout/success_rate", [])),
                    "critic_loss": _mean_last(sc.get("train/critic_loss", [])),
                    "actor_loss": _mean_last(sc.get("train/actor_loss", [])),
                    "entropy": _mean_last(sc.get("train/entropy", [])),
                    "alpha": statistics.fmean(alphas) if alphas else float("nan"),
                    "update_ms": statistics.median(v for _, v in sc.get("time/update_ms", [(0, float("nan"))])),
                })  # fmt: skip
    if not rows:
        print(f"sm_care_short.py: no runs under {out}", file=sys.stderr)
        return 1
    head = ("| arch | training | seed | steps/task | eval return (mean over tasks) at each evaluation | success | "
            "rollout success | critic loss | actor loss | entropy | mean α | update ms (median) |")  # fmt: skip
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['variant']} | {r['seed']} | {r['step']} | "
                     f"{', '.join(str(x) for x in r['returns'])} | {r['success']:.2f} | {r['rollout_success']:.3f} | "
                     f"{r['critic_loss']:.3g} | {r['actor_loss']:.3g} | {r['entropy']:.2f} | {r['alpha']:.3f} | "
                     f"{r['update_ms']:.0f} |")  # fmt: skip
    lines += ["", "Losses, entropy and α: the mean of the last three logged values (every 50 steps); mean α: over "
              "the 10 tasks. Evaluation: the preset's protocol (mt10_legacy, one episode per task on its fixed "
              "goal)."]  # fmt: skip
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every (arch, training, seed)")
    r.add_argument("--out", default="benchmarks/results/sm_care_short")
    r.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    r.add_argument("--steps", type=int, default=600, help="steps per task")
    s = sub.add_parser("summary", help="summary.md from the runs' eval.jsonl and TensorBoard scalars")
    s.add_argument("--out", default="benchmarks/results/sm_care_short")
    args = p.parse_args(argv)
    return cmd_run(args) if args.cmd == "run" else cmd_summary(args)


if __name__ == "__main__":
    sys.exit(main())
