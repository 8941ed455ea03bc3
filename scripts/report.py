"""Turn a sweep directory into a success-rate report (SPEC §5): tables (Markdown, CSV) and PNGs.

    python scripts/report.py <sweep_dir> --out <dir> [--last-k 3] [--reps 20000] [--target imgrad]
    python scripts/report.py <table_dir> --table mt10      # a table run by python -m mtrl.reproduce (SPEC §10)

Every directory under ``sweep_dir`` that holds an ``eval.jsonl`` (or TensorBoard events with
``eval_tasks/<task>/success_rate``, read with tbparse) or a Hydra ``.hydra/config.yaml`` is a run; the method and
seed come from the JSONL (``method``, ``seed``) or from the Hydra config (``agent.aggregator``, ``seed``); runs of a
sweep over further keys (``<method>/seed_<s>/agent.lr=0.001``) are reported as ``<method> [agent.lr=0.001]``. A run
directory with a config but no evaluation is reported as missing/crashed, never silently dropped.

Per method: final success = mean over the last ``k`` evaluations of a run (k is printed in the report), and the
best evaluation over training; mean ± SEM across seeds (the papers' form); IQM and mean with 95% stratified-
bootstrap intervals over runs x tasks (rliable); probability of improvement of ``--target`` over each other
method (rliable). Per-task final success table. PNGs: learning curves (mean ± SEM across the seeds that reached
each step; runs of different lengths are aligned by step), a per-task heatmap, and the interval estimates.

Writes ``summary.csv`` (``method, n_seeds, n_missing, final_mean, final_sem, best_mean, best_sem, iqm, iqm_low,
iqm_high, mean, mean_low, mean_high``), ``per_task.csv``, ``poi.csv``, ``report.md``, ``curves.png``,
``heatmap.png``, ``intervals.png``.

``--table <name or .yaml>`` (a directory written by ``python -m mtrl.reproduce``, runs in ``<dir>/<row>/seed_<n>``):
runs are labelled by their row, and ``table.csv`` / the top of ``report.md`` put per row the published mean ± SEM
next to mtrl's mean ± SEM over the seeds that finished their budget, the 95% t-interval, the seed count, the budget
reached and a verdict (:func:`mtrl.tables.verdict`: ``consistent`` within two combined SEMs, else ``lower`` /
``higher``; ``incomplete`` below the paper's budget or seed count). The budget the directory was run with heads
the section. ``--out`` defaults to ``<dir>/report``. Tables of the supervised module get the comparison only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Run:
    path: Path
    method: str
    seed: int | None
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tasks: list[str] = field(default_factory=list)
    success: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [n_evals, n_tasks]
    protocol: str = ""
    bad_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.success.size > 0


def _hydra_identity(run_dir: Path) -> tuple[str | None, int | None]:
    cfg = run_dir / ".hydra" / "config.yaml"
    if not cfg.exists():
        return None, None
    try:
        from omegaconf import OmegaConf

        c = OmegaConf.load(cfg)
        method = OmegaConf.select(c, "agent.aggregator") or OmegaConf.select(c, "aggregator")
        seed = OmegaConf.select(c, "seed")
        return (str(method) if method is not None else None), (int(seed) if seed is not None else None)
    except Exception:  # a corrupt config only loses the identity, the run is still reported
        return None, None


def _read_jsonl(run: Run, path: Path) -> None:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            run.bad_lines += 1
    rows = [r for r in rows if isinstance(r, dict) and "step" in r and isinstance(r.get("tasks"), dict)]
    if not rows:
        return
    run.method = str(rows[0].get("method", run.method))
    run.seed = rows[0].get("seed", run.seed)
    run.protocol = str(rows[0].get("protocol", ""))
    run.tasks = list(rows[0]["tasks"])
    rows.sort(key=lambda r: r["step"])
    run.steps = np.array([r["step"] for r in rows], dtype=np.int64)
    run.success = np.array(
        [[float(r["tasks"].get(t, {}).get("success_rate", np.nan)) for t in run.tasks] for r in rows]
    )


def _read_tensorboard(run: Run, run_dir: Path) -> None:
    try:
        from tbparse import SummaryReader
    except ImportError:
        return
    df = SummaryReader(str(run_dir)).scalars
    if df.empty:
        return
    df = df[df["tag"].str.startswith("eval_tasks/") & df["tag"].str.endswith("/success_rate")]
    if df.empty:
        return
    df = df.assign(task=df["tag"].str.slice(len("eval_tasks/"), -len("/success_rate")))
    table = df.pivot_table(index="step", columns="task", values="value", aggfunc="last").sort_index()
    run.tasks = list(table.columns)
    run.steps = table.index.to_numpy(dtype=np.int64)
    run.success = table.to_numpy(dtype=np.float64)


def discover(sweep: Path) -> list[Run]:
    """All runs under ``sweep`` (see module docstring)."""
    dirs = set()
    for marker in ("eval.jsonl", ".hydra/config.yaml"):
        dirs.update(p.parent if marker == "eval.jsonl" else p.parent.parent for p in sweep.rglob(marker))
    dirs.update(p.parent for p in sweep.rglob("events.out.tfevents.*"))
    runs = []
    for d in sorted(dirs):
        if any(d != o and o in d.parents for o in dirs) and not (d / "eval.jsonl").exists():
            continue  # a TensorBoard sub-directory of a run already listed
        method, seed = _hydra_identity(d)
        run = Run(d, method or "?", seed)
        if (d / "eval.jsonl").exists():
            _read_jsonl(run, d / "eval.jsonl")
        if not run.ok:
            _read_tensorboard(run, d)
        if swept_keys(d):  # a sweep over more than method and seed: its runs are grouped per setting
            run.method = f"{run.method} [{swept_keys(d)}]"
        runs.append(run)
    return runs


def swept_keys(run_dir: Path) -> str:
    """The other swept keys of a run laid out as ``.../seed_<s>/<key=value,...>`` (the sweep subdir of
    ``mtrl.train -m``, issue 21), e.g. ``agent.lr=0.001``; empty for ``.../seed_<s>`` or a timestamped run."""
    parts = run_dir.parts
    i = max((j for j, p in enumerate(parts) if p.startswith("seed_")), default=None)
    rest = parts[i + 1 :] if i is not None else ()
    return "/".join(rest) if rest and all("=" in p for p in rest) else ""


def dir_label(run_dir: Path) -> str:
    """The label of a run laid out as ``<sweep>/<label>/seed_<s>`` (``--label dir``), with its other swept keys
    (``<label>/seed_<s>/<key=value>``); otherwise its own name."""
    swept = swept_keys(run_dir)
    if swept:
        run_dir = run_dir.parents[len(Path(swept).parts) - 1]
        return f"{run_dir.parent.name} [{swept}]"
    return run_dir.parent.name if run_dir.name.startswith("seed_") else run_dir.name


def _sem(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def final_scores(run: Run, k: int) -> np.ndarray:
    """Per-task final success of a run: mean over its last ``k`` evaluations."""
    return np.nanmean(run.success[-k:], axis=0)


def summarise(runs: list[Run], k: int, reps: int, seed: int = 0) -> tuple[list[dict], dict, dict]:
    """Per-method rows of ``summary.csv``, per-method score matrices [runs, tasks], and the interval estimates."""
    by_method: dict[str, list[Run]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    scores, rows = {}, []
    for method, rs in sorted(by_method.items()):
        good = [r for r in rs if r.ok]
        row: dict = {"method": method, "n_seeds": len(good), "n_missing": len(rs) - len(good)}
        if good:
            mat = np.stack([final_scores(r, k) for r in good])
            finals = mat.mean(1)
            bests = np.array([np.nanmean(r.success, axis=1).max() for r in good])
            scores[method] = mat
            row.update(
                final_mean=float(finals.mean()),
                final_sem=_sem(finals),
                best_mean=float(bests.mean()),
                best_sem=_sem(bests),
            )
        rows.append(row)
    intervals = _intervals(scores, reps, seed) if scores else {}
    for row in rows:
        for name in ("iqm", "mean"):
            est = intervals.get(name, ({}, {}))
            if row["method"] in est[0]:
                row[name] = float(est[0][row["method"]])
                row[f"{name}_low"], row[f"{name}_high"] = (float(v) for v in est[1][row["method"]])
    return rows, scores, intervals


def _quiet(fn):
    """rliable passes a RandomState to arch, which warns about its deprecation on every call."""

    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return fn(*args, **kwargs)

    return wrapped


@_quiet
def _intervals(scores: dict[str, np.ndarray], reps: int, seed: int) -> dict:
    from rliable import library as rly
    from rliable import metrics

    rs = np.random.RandomState(seed)
    out = {}
    for name, fn in (("iqm", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean)):
        point, ci = rly.get_interval_estimates(scores, lambda x, f=fn: np.array([f(x)]), reps=reps, random_state=rs)
        out[name] = ({m: v[0] for m, v in point.items()}, {m: (v[0][0], v[1][0]) for m, v in ci.items()})
    return out


@_quiet
def probability_of_improvement(scores: dict[str, np.ndarray], target: str, reps: int, seed: int = 0) -> list[dict]:
    """P(target > other) with 95% stratified-bootstrap intervals (rliable), for every other method."""
    from rliable import library as rly
    from rliable import metrics

    if target not in scores:
        return []
    pairs = {f"{target},{m}": (scores[target], scores[m]) for m in scores if m != target}
    if not pairs:
        return []
    point, ci = rly.get_interval_estimates(
        pairs, metrics.probability_of_improvement, reps=reps, random_state=np.random.RandomState(seed)
    )
    return [
        {
            "target": target,
            "other": key.split(",")[1],
            "poi": float(np.ravel(point[key])[0]),
            "poi_low": float(np.ravel(ci[key])[0]),
            "poi_high": float(np.ravel(ci[key])[-1]),
        }
        for key in pairs
    ]


def learning_curves(runs: list[Run]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per method: steps, mean success across the seeds that reached each step, its SEM, and the seed count."""
    out = {}
    by_method: dict[str, list[Run]] = {}
    for r in runs:
        if r.ok:
            by_method.setdefault(r.method, []).append(r)
    for method, rs in by_method.items():
        steps = np.unique(np.concatenate([r.steps for r in rs]))
        vals = np.full((len(rs), len(steps)), np.nan)
        for i, r in enumerate(rs):
            vals[i, np.searchsorted(steps, r.steps)] = np.nanmean(r.success, axis=1)
        n = np.sum(~np.isnan(vals), axis=0)
        mean = np.nanmean(vals, axis=0)
        sd = np.array([np.nanstd(vals[:, j], ddof=1) if n[j] > 1 else 0.0 for j in range(len(steps))])
        out[method] = (steps, mean, sd / np.sqrt(np.maximum(n, 1)), n)
    return out


def _plots(out: Path, runs: list[Run], scores: dict[str, np.ndarray], tasks: list[str], intervals: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, (steps, mean, sem, _) in sorted(learning_curves(runs).items()):
        ax.plot(steps, mean, label=method)
        ax.fill_between(steps, mean - sem, mean + sem, alpha=0.25)
    ax.set_xlabel("environment steps per task")
    ax.set_ylabel("success rate (mean over tasks)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)

    methods = sorted(scores)
    if methods:
        mat = np.stack([scores[m].mean(0) for m in methods])
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(tasks), 1.0 + 0.5 * len(methods)))
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(methods)), methods)
        for i in range(len(methods)):
            for j in range(len(tasks)):
                ax.text(
                    j,
                    i,
                    f"{mat[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if mat[i, j] < 0.5 else "black",
                )
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(out / "heatmap.png", dpi=110)
        plt.close(fig)

        fig, axes = plt.subplots(1, 2, figsize=(8, 0.6 + 0.5 * len(methods)), sharey=True)
        for ax, name in zip(axes, ("iqm", "mean")):
            point, ci = intervals[name]
            for i, m in enumerate(methods):
                ax.plot([ci[m][0], ci[m][1]], [i, i], lw=6, alpha=0.5)
                ax.plot([point[m]], [i], "k|", ms=12)
            ax.set_yticks(range(len(methods)), methods)
            ax.set_title(f"{name.upper()} (95% CI)")
            ax.set_xlabel("final success rate")
        fig.tight_layout()
        fig.savefig(out / "intervals.png", dpi=110)
        plt.close(fig)


def _fmt(v: float | None, nd: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def write_report(out: Path, runs: list[Run], rows: list[dict], scores: dict, poi: list[dict], k: int) -> None:
    tasks = next((r.tasks for r in runs if r.ok), [])
    cols = [
        "method",
        "n_seeds",
        "n_missing",
        "final_mean",
        "final_sem",
        "best_mean",
        "best_sem",
        "iqm",
        "iqm_low",
        "iqm_high",
        "mean",
        "mean_low",
        "mean_high",
    ]
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    with (out / "per_task.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", *tasks])
        for m in sorted(scores):
            w.writerow([m, *[f"{v:.4f}" for v in scores[m].mean(0)]])
    with (out / "poi.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["target", "other", "poi", "poi_low", "poi_high"])
        w.writeheader()
        w.writerows(poi)
    protocols = sorted({r.protocol for r in runs if r.protocol})
    md = [
        f"# Success-rate report: {out}",
        "",
        f"Runs found: {len(runs)} ({sum(r.ok for r in runs)} with evaluations). Protocol(s): "
        f"{', '.join(protocols) or 'unknown'}. Final = mean of the last {k} evaluations of each run; best = best "
        "evaluation over training. ± is the SEM across seeds; intervals are 95% stratified-bootstrap (rliable).",
        "",
        "| method | seeds | final (mean ± SEM) | best (mean ± SEM) | IQM [95% CI] | mean [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['method']} | {r['n_seeds']}{' (+' + str(r['n_missing']) + ' missing)' if r['n_missing'] else ''}"
            f" | {_fmt(r.get('final_mean'))} ± {_fmt(r.get('final_sem'))} | {_fmt(r.get('best_mean'))} ± "
            f"{_fmt(r.get('best_sem'))} | {_fmt(r.get('iqm'))} [{_fmt(r.get('iqm_low'))}, "
            f"{_fmt(r.get('iqm_high'))}] | {_fmt(r.get('mean'))} [{_fmt(r.get('mean_low'))}, "
            f"{_fmt(r.get('mean_high'))}] |"
        )
    if poi:
        md += [
            "",
            "Probability of improvement (P(target > other), 95% CI):",
            "",
            "| target | other | P | 95% CI |",
            "|---|---|---|---|",
        ]
        md += [
            f"| {p['target']} | {p['other']} | {p['poi']:.3f} | [{p['poi_low']:.3f}, {p['poi_high']:.3f}] |"
            for p in poi
        ]
    if tasks:
        md += [
            "",
            "Per-task final success (mean over seeds):",
            "",
            "| method | " + " | ".join(tasks) + " |",
            "|---" * (len(tasks) + 1) + "|",
        ]
        md += [f"| {m} | " + " | ".join(f"{v:.2f}" for v in scores[m].mean(0)) + " |" for m in sorted(scores)]
    missing = [r for r in runs if not r.ok]
    if missing:
        md += ["", "Runs without evaluations (missing or crashed):", ""]
        md += [f"- `{r.path}` (method {r.method}, seed {r.seed})" for r in missing]
    bad = [r for r in runs if r.bad_lines]
    if bad:
        md += ["", "Unreadable JSONL lines were skipped:", ""] + [f"- `{r.path}`: {r.bad_lines}" for r in bad]
    md += ["", "![curves](curves.png)", "", "![heatmap](heatmap.png)", "", "![intervals](intervals.png)", ""]
    (out / "report.md").write_text("\n".join(md))


# ------------------------------------------------------------------------------- --table: mtrl next to the paper
TABLE_COLS = ["row", "label", "published_mean", "published_sem", "published_seeds", "mean", "sem", "ci_low", "ci_high",
              "n_seeds", "reached", "reached_fraction", "budgets", "verdict"]  # fmt: skip


def budget_line(sweep: Path, table) -> str:
    """The budget a table directory was run with (``reproduce.json`` of ``mtrl.reproduce``), as one sentence."""
    length_key = table.budget["length"]
    try:
        b = json.loads((sweep / "reproduce.json").read_text())["budget"]
        name, value = str(b["name"]), int(b["values"][length_key])
    except (OSError, ValueError, KeyError, TypeError):
        return (f"Budget: unknown (no reproduce.json in {sweep}); the paper's is {length_key}={table.paper_length:,}. "
                "Each row's budget reached is below.")  # fmt: skip
    if name == "paper":
        return f"Budget: **paper** ({length_key}={value:,})."
    return (
        f"Budget: **{name}** ({length_key}={value:,}, {100 * value / table.paper_length:.3g}% of the paper's "
        f"{table.paper_length:,}): NOT the paper's budget, so every verdict is `incomplete`."
    )


def table_markdown(sweep: Path, table, rows: list[dict], k: int) -> list[str]:
    """The Markdown section of ``--table``: header with the budget, one line per row of the published table."""
    higher = "higher is better" if table.metric["higher_is_better"] else "lower is better"
    md = [f"# {table.title}: mtrl next to the paper", "", budget_line(sweep, table), "",
          f"mtrl = mean ± SEM over the seeds that finished their budget of the final {table.metric['name']} (mean of "
          f"each run's last {k} evaluations; {higher}); 95% = t-interval of that mean. Verdict: `consistent` if "
          "|mtrl − published| < 2·sqrt(SEM_pub² + SEM_mtrl²), else `lower`/`higher`; `incomplete` below the paper's "
          "budget or seed count.", "",
          "| row | published (mean ± SEM, seeds) | mtrl (mean ± SEM) | 95% interval | seeds | budget reached "
          "| verdict |",
          "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        pub = f"{r['published_mean']:.2f} ± {_fmt(r['published_sem'], 3) if r['published_sem'] is not None else 'n/a'}"
        md.append(f"| {r['label']} (`{r['row']}`) | {pub} ({r['published_seeds']}) | {_fmt(r['mean'])} ± "
                  f"{_fmt(r['sem'])} | [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {r['n_seeds']} | "
                  f"{r['reached']:,} ({100 * r['reached_fraction']:.3g}%) | {r['verdict']} |")  # fmt: skip
    return md


def write_table_report(out: Path, sweep: Path, table, k: int, prepend: bool) -> str:
    """``table.csv`` and the ``--table`` section (put at the top of ``report.md`` when ``prepend``, else written as
    ``report.md``); returns the section."""
    from mtrl.tables import compare

    rows = compare(sweep, table, last_k=k)
    with (out / "table.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TABLE_COLS)
        w.writeheader()
        w.writerows({c: r.get(c, "") for c in TABLE_COLS} for r in rows)
    section = "\n".join(table_markdown(sweep, table, rows, k))
    report = out / "report.md"
    rest = report.read_text() if prepend and report.exists() else ""
    report.write_text(section + ("\n\n" + rest if rest else "\n"))
    return section


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Success-rate report of a sweep directory (SPEC §5).")
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="output directory (required unless --table: <dir>/report)")
    ap.add_argument("--last-k", type=int, default=3, help="final success = mean of the last k evaluations")
    ap.add_argument("--reps", type=int, default=20000, help="bootstrap repetitions")
    ap.add_argument("--target", default="imgrad", help="method whose probability of improvement is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-step",
        type=int,
        default=None,
        help="only evaluations at step <= N (compare runs at an equal budget when some ran longer)",
    )
    ap.add_argument(
        "--label",
        choices=("method", "dir"),
        default="method",
        help="name runs by their aggregator (method) or by the directory above seed_<s> (dir: e.g. architectures "
        "run with the same aggregator, <sweep>/<label>/seed_<s>)",
    )
    ap.add_argument(
        "--table",
        default=None,
        help="compare with a published table (mtrl/tables: mt10, nyuv2, ...; or "
        "a .yaml): the directory is one written by python -m mtrl.reproduce",
    )
    args = ap.parse_args(argv)
    table = None
    if args.table is not None:
        from mtrl.tables import TableError, load_table

        try:
            table = load_table(args.table)
        except TableError as err:
            print(f"report: error: {err}", file=sys.stderr)
            return 2
        args.label = "dir"  # <dir>/<row>/seed_<n>: the row names the run
        args.out = args.out or args.sweep_dir / "report"
    if args.out is None:
        print("report: error: --out is required (or --table, which writes into <dir>/report)", file=sys.stderr)
        return 2
    if table is not None and table.metric["file"] != "eval.jsonl" and args.sweep_dir.is_dir():
        args.out.mkdir(parents=True, exist_ok=True)
        print(write_table_report(args.out, args.sweep_dir, table, args.last_k, prepend=False))
        return 0
    missing = [m for m in ("rliable", "matplotlib") if _missing(m)]
    if missing:
        print(f"report: error: {', '.join(missing)} not installed: pip install -e '.[analysis]' (the analysis extra)",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.sweep_dir.is_dir():
        print(f"report: error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    if args.last_k < 1 or args.reps < 1:
        print("report: error: --last-k and --reps must be >= 1", file=sys.stderr)
        return 2
    runs = discover(args.sweep_dir)
    if args.label == "dir":
        for r in runs:
            r.method = dir_label(r.path)
    if args.max_step is not None:
        for r in runs:
            keep = r.steps <= args.max_step
            r.steps, r.success = r.steps[keep], r.success[keep]
    if not any(r.ok for r in runs):
        print(
            f"report: error: no run with evaluations under {args.sweep_dir} (found {len(runs)} run directories; "
            "expected eval.jsonl or TensorBoard eval_tasks/*/success_rate)",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows, scores, intervals = summarise(runs, args.last_k, args.reps, args.seed)
    poi = probability_of_improvement(scores, args.target, args.reps, args.seed)
    write_report(args.out, runs, rows, scores, poi, args.last_k)
    _plots(args.out, runs, scores, next(r.tasks for r in runs if r.ok), intervals)
    if table is not None:
        write_table_report(args.out, args.sweep_dir, table, args.last_k, prepend=True)
    print((args.out / "report.md").read_text().split("\n\n![curves]")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
