"""Two-task synthetic benchmark of IMGrad Fig. 2 (from the Nash-MTL / CAGrad toy; SPEC §3).

``θ = (x1, x2)`` is optimised by Adam (lr 1e-3, 35,000 steps) from five starts, with the per-task gradients of the
*weighted* losses ``(w1·L1, w2·L2)`` combined by an aggregator. The losses and their gradients are written out
by hand (vectorised over the starts in numpy; a test checks them against torch autograd), so the aggregator
call dominates the cost.

    python -m mtrl.toy preset=imgrad_fig2                     # 5 methods x 5 starts x 35,000 steps -> outputs/toy/
    python -m mtrl.toy preset=cagrad steps=2000 methods=[ls,imgrad]   # a quick look
    python -m mtrl.toy                                        # runs nothing: prints what a preset would run

A preset must be named (``preset=``): without one nothing runs (the full default is 25 jobs of 35,000 Adam steps).
Writes ``<out>/toy.csv`` (one row per preset, method and start; rows of other presets are kept),
``<out>/toy_<preset>.png`` (trajectories over the contours of the mean loss) and ``<out>/trajectories_<preset>.npz``;
``diagnostics_every=N`` (default 0: off) also writes each start's raw aggregator diagnostics every N steps, its
config and its outcome into ``<out>/runs/<preset>/<method>/start_<k>/`` (``diagnostics/toy.bin``,
``resolved_config.yaml``, ``outcome.json``), the run layout ``python -m mtrl.analyze`` reads (``docs/analysis.md``).
``out`` defaults to ``outputs/toy`` (not committed; the committed results in ``benchmarks/results/toy*`` are
regenerated only with an explicit ``out=``). Prints a table with the final point, the distances to the Pareto
front (``x2 ≈ −8.3552, x1 ∈ [−7, 7]``) and to the optimum of the mean (``(0, −8.3552)``), the final losses, and the
time per method: wall seconds and CPU seconds (``time.process_time`` of the worker), each summed over its starts.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LOWER = 5e-6
FRONT_X2 = -8.3552
OPTIMUM = (0.0, FRONT_X2)
STARTS = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
PRESETS = {"imgrad_fig2": (0.9, 0.1), "nashmtl": (0.1, 1.0), "cagrad": (1.0, 1.0)}
DEFAULT_OUT = Path("outputs/toy")  # relative to the working directory; /outputs/ is not committed


def losses_and_grads(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Losses ``[n, 2]`` and gradients ``[n, 2 (task), 2 (coordinate)]`` at points ``x`` (``[n, 2]``)."""
    x1, x2 = x[:, 0], x[:, 1]
    t2 = np.tanh(-x2)
    dt2 = 1.0 - t2**2  # d tanh(-x2) / d(-x2); d/dx2 tanh(-x2) = -dt2
    u1 = 0.5 * (-x1 - 7.0) - t2
    u2 = 0.5 * (-x1 + 3.0) + t2 + 2.0
    a1, a2 = np.abs(u1), np.abs(u2)
    f1_log = np.log(np.maximum(a1, LOWER)) + 6.0
    f2_log = np.log(np.maximum(a2, LOWER)) + 6.0
    # d log|u| = du / u where |u| >= LOWER (the max clips the gradient to 0 below). At the kinks of max(·) we take
    # the gradient torch.clamp takes (it passes the gradient at equality), as the reference autograd toys do.
    g1l = np.where(a1 >= LOWER, 1.0 / np.where(a1 >= LOWER, u1, 1.0), 0.0)
    g2l = np.where(a2 >= LOWER, 1.0 / np.where(a2 >= LOWER, u2, 1.0), 0.0)
    df1_log = np.stack([g1l * -0.5, g1l * dt2], -1)
    df2_log = np.stack([g2l * -0.5, g2l * -dt2], -1)
    th = np.tanh(0.5 * x2)
    c1, c2 = np.maximum(th, 0.0), np.maximum(-th, 0.0)
    dth = 0.5 * (1.0 - th**2)
    dc1 = np.where(th >= 0, dth, 0.0)  # at x2 = 0 both weights pass their gradient (so (0, 0) is not stuck)
    dc2 = np.where(-th >= 0, -dth, 0.0)
    f1_sq = ((-x1 + 7.0) ** 2 + 0.1 * (-x2 - 8.0) ** 2) / 10.0 - 20.0
    f2_sq = ((-x1 - 7.0) ** 2 + 0.1 * (-x2 - 8.0) ** 2) / 10.0 - 20.0
    dsq2 = 0.02 * (x2 + 8.0)
    df1_sq = np.stack([0.2 * (x1 - 7.0), dsq2], -1)
    df2_sq = np.stack([0.2 * (x1 + 7.0), dsq2], -1)
    L1 = c1 * f1_log + c2 * f1_sq
    L2 = c1 * f2_log + c2 * f2_sq
    zeros = np.zeros_like(x1)
    dL1 = c1[:, None] * df1_log + c2[:, None] * df1_sq + np.stack([zeros, dc1 * f1_log + dc2 * f1_sq], -1)
    dL2 = c1[:, None] * df2_log + c2[:, None] * df2_sq + np.stack([zeros, dc1 * f2_log + dc2 * f2_sq], -1)
    return np.stack([L1, L2], -1), np.stack([dL1, dL2], 1)


def distance_to_front(x: np.ndarray) -> np.ndarray:
    """Euclidean distance to the Pareto front, the segment ``x2 = −8.3552, x1 ∈ [−7, 7]``."""
    return np.hypot(x[:, 0] - np.clip(x[:, 0], -7.0, 7.0), x[:, 1] - FRONT_X2)


@dataclass
class ToyRun:
    method: str
    finals: np.ndarray  # [n_starts, 2]
    losses: np.ndarray  # [n_starts, 2] unweighted final losses
    trajectories: np.ndarray  # [n_starts, n_records, 2]
    pareto_failure_frac: np.ndarray  # [n_starts]
    solver_failures: int
    seconds: float  # wall time (time.perf_counter)
    cpu_seconds: float = 0.0  # CPU time of the process that ran it (time.process_time)


def run_method(
    method: str,
    kwargs: dict[str, Any],
    weights: tuple[float, float],
    steps: int,
    lr: float,
    seed: int,
    record_every: int,
    starts: tuple[tuple[float, float], ...] = STARTS,
    diag_dirs: list[str] | None = None,
    diag_every: int = 0,
) -> ToyRun:
    """Optimise ``starts`` with one aggregator; each start has its own aggregator instance (state, warm start)
    seeded with ``seed + index``. ``diag_dirs`` (one per start) with ``diag_every > 0``: raw diagnostics every
    ``diag_every`` steps (stream ``toy``, :mod:`mtrl.diagnostics_file`; losses: the weighted ones)."""
    import torch

    from mtrl.aggregators import make_aggregator

    torch.set_num_threads(1)
    n = len(starts)
    aggs = [make_aggregator(method, **kwargs) for _ in range(n)]
    for i, agg in enumerate(aggs):
        agg.seed(seed + i)
    x = np.array(starts, dtype=np.float64)
    m, v = np.zeros_like(x), np.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8
    w = np.array(weights)[None, :, None]
    traj = [x.copy()]
    failures = np.zeros(n)
    d = np.zeros_like(x)
    raw = None
    if diag_dirs is not None and diag_every > 0:
        from mtrl.diagnostics_file import DiagnosticsWriter

        raw = [DiagnosticsWriter(dd, "toy", ["L1", "L2"], x="Adam step") for dd in diag_dirs]
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, steps + 1):
        L, grads = losses_and_grads(x)
        grads = grads * w
        Lw = L * w[0, :, 0]
        for i, agg in enumerate(aggs):
            if step > 1:  # after-step hook: the losses at the updated point (what FAMO/DWA/UW/IGB learn from)
                agg.step(torch.from_numpy(Lw[i]))
            res = agg(torch.from_numpy(grads[i]), losses=torch.from_numpy(Lw[i]))
            d[i] = res.direction.numpy()
            failures[i] += res.stats.get("pareto_failure", 0.0)
            if raw is not None and (step - 1) % diag_every == 0:
                raw[i].add(step, step, res.stats, Lw[i])
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        x = x - lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)
        if step % record_every == 0 or step == steps:
            traj.append(x.copy())
    for w_ in raw or []:
        w_.flush()
    L, _ = losses_and_grads(x)
    return ToyRun(
        method,
        x,
        L,
        np.stack(traj, 1),
        failures / steps,
        sum(a.n_solver_failures for a in aggs),
        time.perf_counter() - t0,
        time.process_time() - c0,
    )


def _job(index: int, *args: Any) -> tuple[int, ToyRun]:
    """:func:`run_method` tagged with its job index (results arrive in completion order)."""
    return index, run_method(*args)


def _merge(parts: list[ToyRun]) -> ToyRun:
    return ToyRun(
        parts[0].method,
        np.concatenate([p.finals for p in parts]),
        np.concatenate([p.losses for p in parts]),
        np.concatenate([p.trajectories for p in parts]),
        np.concatenate([p.pareto_failure_frac for p in parts]),
        sum(p.solver_failures for p in parts),
        sum(p.seconds for p in parts),
        sum(p.cpu_seconds for p in parts),
    )


def _method_kwargs(cfg: Any, method: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    raw = cfg.get(method)
    if raw is None:
        return {}
    return {k: v for k, v in OmegaConf.to_container(raw).items() if v is not None}


def plot(preset: str, runs: list[ToyRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.linspace(-10, 10, 300)
    X1, X2 = np.meshgrid(xs, xs)
    L, _ = losses_and_grads(np.stack([X1.ravel(), X2.ravel()], -1))
    wts = np.array(PRESETS[preset])
    Z = (L @ wts).reshape(X1.shape) / wts.sum()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.4), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.05, 0.95, len(STARTS)))
    for ax, run in zip(axes[0], runs):
        ax.contour(X1, X2, Z, levels=18, cmap="Greys", linewidths=0.6)
        ax.plot([-7, 7], [FRONT_X2, FRONT_X2], color="grey", lw=3, alpha=0.6)
        for k, tr in enumerate(run.trajectories):
            ax.plot(tr[:, 0], tr[:, 1], color=colors[k], lw=1.5)
            ax.plot(*tr[0], "o", color=colors[k], ms=5)
        ax.plot(*OPTIMUM, "*", color="red", ms=11)
        ax.set_title(run.method)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"preset {preset}: weights {PRESETS[preset]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    import hydra
    from omegaconf import DictConfig

    from mtrl import _help
    from mtrl._paths import config_dir

    if _help.wants_help(sys.argv[1:]):
        print(_help.app_help("mtrl.toy"))
        sys.exit(0)
    from mtrl.aggregators import make_aggregator

    @hydra.main(config_path=config_dir(), config_name="toy", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        preset = None if cfg.preset is None else str(cfg.preset)
        methods = list(cfg.methods) if not isinstance(cfg.methods, str) else [cfg.methods]
        try:
            if preset is not None and preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
            if int(cfg.steps) < 1 or float(cfg.lr) <= 0 or int(cfg.record_every) < 1:
                raise ValueError("steps and record_every must be >= 1 and lr > 0")
            kwargs = {m: _method_kwargs(cfg, m) for m in methods}
            for m in methods:  # validate names and kwargs before any work
                make_aggregator(m, **kwargs[m])
        except (ValueError, TypeError) as e:
            sys.exit(f"mtrl.toy: error: {e}")
        out = Path(str(cfg.out)) if cfg.out is not None else DEFAULT_OUT
        if preset is None:  # a bare ``python -m mtrl.toy`` must not start minutes of work unasked
            print(_plan(methods, int(cfg.steps), int(cfg.n_jobs), out))
            sys.exit(2)
        from joblib import Parallel, delayed

        out.mkdir(parents=True, exist_ok=True)
        print(
            f"toy: preset {preset} weights {PRESETS[preset]}, {len(methods)} methods x {len(STARTS)} starts x "
            f"{cfg.steps} steps, {cfg.n_jobs} jobs",
            flush=True,
        )
        t0 = time.perf_counter()
        # one job per (method, start), so that a slow method (Nash-MTL's cvxpy CCCP) spreads over the workers;
        # a line per finished job, in the order they finish (a 5-start run of igbv2 or imgrad_nash takes minutes)
        jobs = [(m, k) for m in methods for k in range(len(STARTS))]
        every = int(cfg.get("diagnostics_every", 0) or 0)

        def start_dir(m: str, k: int) -> Path:
            return out / "runs" / preset / m / f"start_{k}"

        results = Parallel(n_jobs=int(cfg.n_jobs), return_as="generator_unordered")(
            delayed(_job)(
                i,
                m,
                kwargs[m],
                PRESETS[preset],
                int(cfg.steps),
                float(cfg.lr),
                int(cfg.seed) + k,
                int(cfg.record_every),
                (STARTS[k],),
                [str(start_dir(m, k))] if every > 0 else None,
                every,
            )
            for i, (m, k) in enumerate(jobs)
        )
        parts: list[ToyRun | None] = [None] * len(jobs)
        for done, (i, part) in enumerate(results, start=1):
            parts[i] = part
            m, k = jobs[i]
            print(f"  [{done}/{len(jobs)}] {m} from {STARTS[k]}: {part.seconds:.1f} s wall, {part.cpu_seconds:.1f} s "
                  f"CPU ({time.perf_counter() - t0:.0f} s elapsed)", flush=True)  # fmt: skip
        runs = [_merge([p for (m2, _), p in zip(jobs, parts) if m2 == m]) for m in methods]
        wall = time.perf_counter() - t0
        rows = []
        for run in runs:
            dfront, dopt = distance_to_front(run.finals), np.hypot(run.finals[:, 0], run.finals[:, 1] - FRONT_X2)
            for k, s in enumerate(STARTS):
                rows.append(
                    {
                        "preset": preset,
                        "method": run.method,
                        "start_x1": s[0],
                        "start_x2": s[1],
                        "final_x1": run.finals[k, 0],
                        "final_x2": run.finals[k, 1],
                        "L1": run.losses[k, 0],
                        "L2": run.losses[k, 1],
                        "dist_front": dfront[k],
                        "dist_opt": dopt[k],
                        "pareto_failure_frac": run.pareto_failure_frac[k],
                        "steps": int(cfg.steps),
                        "solver_failures": run.solver_failures,
                        "seconds": run.seconds,
                        "cpu_seconds": run.cpu_seconds,
                    }
                )
        _write_csv(out / "toy.csv", rows)
        if every > 0:  # each start as a run directory for python -m mtrl.analyze
            _write_start_runs(rows, kwargs, preset, cfg, start_dir)
        np.savez_compressed(out / f"trajectories_{preset}.npz", **{r.method: r.trajectories for r in runs})
        print(format_table(rows))
        print(f"wall time {wall:.1f} s; per method, summed over its {len(STARTS)} starts (wall / CPU seconds): "
              + ", ".join(f"{r.method} {r.seconds:.1f} / {r.cpu_seconds:.1f}" for r in runs))  # fmt: skip
        if cfg.plot:
            plot(preset, runs, out / f"toy_{preset}.png")
            print(f"wrote {out / 'toy.csv'} and {out / f'toy_{preset}.png'}")

    _main()


def _plan(methods: list[str], steps: int, n_jobs: int, out: Path) -> str:
    """What ``python -m mtrl.toy`` without ``preset=`` would run, and how to run it."""
    jobs = len(methods) * len(STARTS)
    presets = ", ".join(f"{p} {w}" for p, w in PRESETS.items())
    return (
        f"mtrl.toy: no preset given, nothing run. With preset=<name> it would run {len(methods)} methods "
        f"({', '.join(methods)}) x {len(STARTS)} starts = {jobs} jobs of {steps} Adam steps, {n_jobs} at a time, "
        f"and write {out}/toy.csv, {out}/toy_<preset>.png.\n"
        f"  presets (task weights): {presets}\n"
        f"  python -m mtrl.toy preset=imgrad_fig2                       # that run\n"
        f"  python -m mtrl.toy preset=imgrad_fig2 steps=2000 methods=[ls,imgrad]   # a quick look\n"
        f"  out=<dir> writes elsewhere (the committed results: out=benchmarks/results/toy)"
    )


def _write_start_runs(rows: list[dict[str, Any]], kwargs: dict[str, dict[str, Any]], preset: str, cfg: Any,
                      start_dir: Any) -> None:  # fmt: skip
    """``resolved_config.yaml`` (key ``toy``: preset, method, its kwargs, start) and ``outcome.json`` per start."""
    import json

    import yaml

    from mtrl._io import atomic_write_text

    for row in rows:
        k = STARTS.index((row["start_x1"], row["start_x2"]))
        d = start_dir(row["method"], k)
        d.mkdir(parents=True, exist_ok=True)
        conf = {"toy": {"preset": preset, "method": row["method"], "kwargs": kwargs[row["method"]], "start": k,
                        "start_xy": [row["start_x1"], row["start_x2"]], "steps": int(cfg.steps), "lr": float(cfg.lr),
                        "seed": int(cfg.seed), "diagnostics_every": int(cfg.diagnostics_every)}}  # fmt: skip
        atomic_write_text(d / "resolved_config.yaml", yaml.safe_dump(conf, sort_keys=False))
        outcome = {k2: float(row[k2]) for k2 in ("dist_opt", "dist_front", "L1", "L2", "pareto_failure_frac")}
        atomic_write_text(d / "outcome.json", json.dumps(outcome) + "\n")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append-or-replace: rows of other presets already in ``path`` are kept, so presets can share one CSV."""
    keep: list[dict[str, Any]] = []
    presets = {r["preset"] for r in rows}
    if path.exists():
        with path.open() as f:
            keep = [r for r in csv.DictReader(f) if r["preset"] not in presets]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in keep + rows:
            writer.writerow({k: r.get(k, "") for k in rows[0]})
    os.replace(tmp, path)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per method and start."""
    head = "| preset | method | start | final (x1, x2) | dist. front | dist. optimum | L1 | L2 | Pareto-fail % |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['method']} | ({r['start_x1']:g}, {r['start_x2']:g}) | "
            f"({r['final_x1']:.2f}, {r['final_x2']:.2f}) | {r['dist_front']:.3f} | {r['dist_opt']:.3f} | "
            f"{r['L1']:.3f} | {r['L2']:.3f} | {100 * r['pareto_failure_frac']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
