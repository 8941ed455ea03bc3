"""The IMGrad paper's analyses from any set of runs: imbalance, Pareto failures, cos φ, individual progress, weights,
cos θ against the imbalance ratio, and hyperparameter sensitivity (issue 22; ``docs/analysis.md``).

    python scripts/analyze.py <sweep or run dirs ...> --out DIR        # or: python -m mtrl.analyze ...

Runs are found by their files, at any depth (a directory with ``resolved_config.yaml`` or ``.hydra/config.yaml`` and
diagnostics: ``diagnostics/*.bin`` (:mod:`mtrl.diagnostics_file`, raw per-update rows) or, for older runs, TensorBoard
window means in ``tb/``). RL runs (``mtrl.train``), supervised runs (``mtrl.supervised.train``) and toy starts
(``python -m mtrl.toy ... diagnostics_every=N``) can be mixed: the analyses are made per *setting* (``rl/<env>``,
``supervised/<benchmark>[-synthetic]``, ``toy/<preset>``) and per *stream* (RL: ``critic``, ``actor``, ``alpha``
apart; supervised ``shared``; toy ``toy``), per method (the aggregator and its non-default keyword arguments), over
seeds (toy: over starts).

Definitions (IMGrad paper, ``shared/papers/imgrad-paper.md``): imbalance ratio ``r = max‖g_i‖/min‖g_i‖`` (Def. 2);
Pareto failure: some ``cos φ_ωi = cos(g_i, d) < 0`` (Def. 3); individual progress ``r_i(t) = L_i(t)/L_i(0)`` (Eq. 1;
``L_i`` is the mean of the task's loss over one of ``--bins`` equal spans of training, ``L_i(0)`` that of the first
span); ``cos θ`` is the angle between ``g0`` and the MGDA point (Eq. 9).

Intervals: a statistic is computed per seed (the unit of replication; toy: per start) and its 95% interval is the
Student-t interval of the mean over seeds (conservative with 3 seeds, where a bootstrap over 3 values is not);
differences between methods use Welch's interval. The Spearman correlation of cos θ with the imbalance ratio also gets
a 95% percentile-bootstrap interval (``--boot`` resamples of the rows within each seed, seed 0). With one seed an
interval is over 10 contiguous blocks of that run: reported, but it never decides a claim.

Decision rule for ``analysis.md`` (:func:`decide`): a claim is **supports** / **contradicts** only when every method it
involves has at least ``MIN_SEEDS`` (3) seeds, the data can measure it (per-update rows for anything binned or
correlated per update; TensorBoard window means cannot) and the 95% interval of its statistic lies entirely on one
side of the claim's threshold; otherwise **inconclusive**, with the reason. A claim of *no effect* ("IMGrad does not
fail more as imbalance grows") is supported only when the interval's upper end is below a stated margin (0.05), and
a trend of the failure rate needs at least ``MIN_FAILURES`` (5) failing updates to be measured at all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtrl import diagnostics_file as DF

MIN_SEEDS = 3
N_BLOCKS = 10
MIN_FAILURES = 5  # a trend of the failure rate with imbalance needs at least this many failing rows
MARGIN = 0.05  # "no increase" of a failure rate: the interval's upper end below +0.05
IMBALANCED = 2.0  # "significant imbalance": a median imbalance ratio above 2
TB_PREFIX = {"critic": "aggregator", "actor": "aggregator_actor", "alpha": "aggregator_alpha", "shared": "aggregator"}
COLS = ("loss", "grad_norm", "cos_to_direction", "weight")
XLABEL = {"rl": "env steps per task", "supervised": "iteration", "toy": "Adam step"}


# ====================================================================== runs
@dataclass
class Stream:
    """The diagnostic rows of one stream of one run (arrays of equal length)."""

    tasks: list[str]
    step: np.ndarray
    cols: dict[str, np.ndarray]  # loss / grad_norm / cos_to_direction / weight: [n, K]; scalars: [n]
    source: str  # "raw" (per-update rows) or "tensorboard" (window means)


@dataclass
class Run:
    path: Path
    kind: str  # rl | supervised | toy
    setting: str
    method: str  # aggregator name
    kwargs: dict[str, Any]
    seed: int
    streams: dict[str, Stream] = field(default_factory=dict)
    outcome: float | None = None  # final success rate (RL, higher better) / Δm% or loss ratio / toy distance
    outcome_name: str = ""

    @property
    def label(self) -> str:
        if not self.kwargs:
            return self.method
        return f"{self.method}[{','.join(f'{k}={_fmt_v(v)}' for k, v in sorted(self.kwargs.items()))}]"


def _rel(p: Path) -> str:
    """``p`` relative to the working directory when it lies under it (committed tables carry no machine paths)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _fmt_v(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}={_fmt_v(x)}" for k, x in sorted(v.items())) + "}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _config(d: Path) -> dict[str, Any] | None:
    for name in ("resolved_config.yaml", ".hydra/config.yaml"):
        if (d / name).is_file():
            try:
                return _load_yaml(d / name)
            except Exception:  # noqa: BLE001 - a damaged config: not a run
                return None
    return None


def _clean_kwargs(kw: Any) -> dict[str, Any]:
    if not isinstance(kw, dict):
        return {}
    return {k: (_clean_kwargs(v) if isinstance(v, dict) else v) for k, v in kw.items() if v is not None}


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Every run directory at or under ``paths`` (a directory with a config and diagnostics), sorted."""
    found: set[Path] = set()
    for p in map(Path, paths):
        for root, dirs, files in os.walk(p):
            d = Path(root)
            dirs[:] = [x for x in dirs if not x.startswith(".") and x not in ("checkpoints", "synthetic_data", "tb",
                                                                            DF.DIAG_DIR)]  # fmt: skip
            has_cfg = "resolved_config.yaml" in files or (d / ".hydra" / "config.yaml").is_file()
            if has_cfg and ((d / DF.DIAG_DIR).is_dir() or (d / "tb").is_dir()):
                found.add(d.resolve())
    return sorted(found)


def load_run(d: Path) -> Run | None:
    """One run: its config (kind, setting, method, seed), its streams and its outcome; None if not a run."""
    cfg = _config(d)
    if cfg is None:
        return None
    if "toy" in cfg:  # a toy start (mtrl.toy with diagnostics_every)
        t = cfg["toy"]
        run = Run(d, "toy", f"toy/{t['preset']}", str(t["method"]), _clean_kwargs(t.get("kwargs")), int(t["start"]))
        if (d / "outcome.json").is_file():
            run.outcome, run.outcome_name = json.loads((d / "outcome.json").read_text())["dist_opt"], "dist_opt"
    elif "agent" in cfg and "env" in cfg:
        a = cfg["agent"]
        run = Run(d, "rl", f"rl/{cfg['env'].get('name', '?')}", str(a["aggregator"]),
                  _clean_kwargs(a.get("aggregator_kwargs")), int(cfg.get("seed", 0)))  # fmt: skip
        recs = _jsonl(d / "eval.jsonl")
        if recs:
            run.outcome, run.outcome_name = float(recs[-1]["success_rate"]), "final success rate"
    elif "benchmark" in cfg and "aggregator" in cfg:
        b = cfg["benchmark"]["name"]
        synth = bool(cfg.get("data", {}).get("synthetic", False))
        run = Run(d, "supervised", f"supervised/{b}{'-synthetic' if synth else ''}", str(cfg["aggregator"]),
                  _clean_kwargs(cfg.get("aggregator_kwargs")), int(cfg.get("seed", 0)))  # fmt: skip
        recs = _jsonl(d / "metrics.jsonl")
        if recs:
            last = recs[-1]
            if last.get("delta_m") is not None and not synth:  # Δm% of synthetic data against the real STL bases
                # would mean nothing: there the outcome is the training progress
                run.outcome, run.outcome_name = float(last["delta_m"]), "final Δm% (lower is better)"
            else:
                first = recs[0]["train_loss"]
                run.outcome = float(np.mean([last["train_loss"][t] / first[t] for t in first]))
                run.outcome_name = "final/first epoch train loss"
    else:
        return None
    names = DF.streams(d)
    if names:
        for s in names:
            schema, rows = DF.read_stream(d, s)
            if len(rows):
                run.streams[s] = Stream(list(schema["tasks"]), rows["step"].astype(np.int64),
                                        {c: rows[c].astype(np.float64) for c in rows.dtype.names
                                         if c not in ("update", "step")}, "raw")  # fmt: skip
    elif (d / "tb").is_dir():
        run.streams = _tb_streams(d, run.kind, cfg)
    return run if run.streams else None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for ln in path.read_text().splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            continue
    return out


def _tb_streams(d: Path, kind: str, cfg: dict[str, Any]) -> dict[str, Stream]:
    """Streams from TensorBoard window means (runs written before the raw file existed)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(d / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", []))

    def series(tag: str) -> dict[int, float]:
        return {e.step: e.value for e in acc.Scalars(tag)} if tag in tags else {}

    out: dict[str, Stream] = {}
    names = ["critic", "actor", "alpha"] if kind == "rl" else ["shared"]
    for s in names:
        pre = TB_PREFIX[s]
        ratio = series(f"{pre}/imbalance_ratio")
        if not ratio:
            continue
        steps = np.array(sorted(ratio), dtype=np.int64)
        tasks = sorted({t.split("/", 2)[2] for t in tags if t.startswith(f"{pre}/grad_norm/")})
        if kind == "rl":
            tasks = [t for t in _rl_task_order(cfg, tasks)]
        cols: dict[str, np.ndarray] = {}
        for c in DF.SCALARS:
            ser = series(f"{pre}/{c}")
            cols[c] = np.array([ser.get(int(x), np.nan) for x in steps])
        for c in ("grad_norm", "cos_to_direction", "weight"):
            sers = [series(f"{pre}/{c}/{t}") for t in tasks]
            cols[c] = np.array([[ser.get(int(x), np.nan) for ser in sers] for x in steps]).reshape(len(steps), -1)
        if kind == "rl":
            lt = {"critic": "critic_loss", "actor": "actor_loss"}.get(s)
            sers = [series(f"train_tasks/{t}/{lt}") for t in tasks] if lt else []
        else:
            sers = [series(f"train/{t}_loss") for t in tasks]
        cols["loss"] = (np.array([[ser.get(int(x), np.nan) for ser in sers] for x in steps]) if sers
                        else np.full((len(steps), len(tasks)), np.nan))  # fmt: skip
        out[s] = Stream(tasks, steps, cols, "tensorboard")
    return out


def _rl_task_order(cfg: dict[str, Any], tasks: list[str]) -> list[str]:
    try:
        from omegaconf import OmegaConf

        from mtrl.envs import task_names

        names = [t for t in task_names(OmegaConf.create(cfg["env"])) if t in tasks]
        return names if len(names) == len(tasks) else tasks
    except Exception:  # noqa: BLE001 - the order is cosmetic
        return tasks


# ====================================================================== statistics
def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def mean_ci(values: Any, boot: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` (one per seed; NaNs dropped) and its 95% Student-t interval (NaN bounds for one value; a
    zero-width interval when all values agree). ``boot`` is unused (kept for call symmetry)."""
    from scipy.stats import t as student

    v = np.asarray([x for x in np.asarray(values, dtype=np.float64).ravel() if np.isfinite(x)])
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) == 1:
        return m, math.nan, math.nan
    h = float(student.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - h, m + h


def per_unit(stat, units: list[Any]) -> tuple[float, float, float]:
    """``stat(unit)`` per replication unit, then :func:`mean_ci` over the units."""
    return mean_ci([stat(u) for u in units])


def wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (NaN for ``n = 0``)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, c - h), min(1.0, c + h)


def rate_ci(est: tuple[float, float, float], streams: list[Stream]) -> tuple[float, float, float]:
    """A failure rate's interval: the t interval over seeds widened to contain the Wilson interval of the pooled
    rows, so that seeds which all agree (e.g. no failure at all) do not give a zero-width interval."""
    f = np.concatenate([s.cols["pareto_failure"] for s in streams])
    f = f[np.isfinite(f)]
    lo, hi = wilson(float(f.sum()), float(len(f)))
    if not np.isfinite(est[1]):
        return est[0], lo, hi
    return est[0], max(0.0, min(est[1], lo)), min(1.0, max(est[2], hi))


def rate_diff_ci(est: tuple[float, float, float], a: list[Stream], b: list[Stream]) -> tuple[float, float, float]:
    """A difference of failure rates: the Welch interval widened to contain ``[lo_a − hi_b, hi_a − lo_b]`` of the
    pooled Wilson intervals (seeds that all agree give no zero-width interval)."""
    ra, rb = rate_ci((math.nan,) * 3, a), rate_ci((math.nan,) * 3, b)
    lo, hi = ra[1] - rb[2], ra[2] - rb[1]
    if not np.isfinite(est[1]):
        return est[0], math.nan, math.nan
    return est[0], min(est[1], lo), max(est[2], hi)


def welch_diff(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """``mean(a) − mean(b)`` and its Welch interval at ``level`` (NaN bounds with fewer than 2 values on a side)."""
    from scipy.stats import t as student

    a = np.asarray([x for x in a if np.isfinite(x)])
    b = np.asarray([x for x in b if np.isfinite(x)])
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return d, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    h = float(student.ppf(0.5 + level / 2, df) * se)
    return d, d - h, d + h


def spearman_boot(pairs: list[tuple[np.ndarray, np.ndarray]], boot: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean over seeds of Spearman's ρ, resampling rows within each seed."""
    if boot < 1 or not pairs:
        return math.nan, math.nan
    rng = _rng(seed)
    vals = np.full(boot, np.nan)
    for b in range(boot):
        rs = []
        for x, y in pairs:
            idx = rng.integers(0, len(x), len(x))
            rs.append(spearman(x[idx], y[idx]))
        rs = [r for r in rs if np.isfinite(r)]
        if rs:
            vals[b] = np.mean(rs)
    vals = vals[np.isfinite(vals)]
    if len(vals) < boot // 2:
        return math.nan, math.nan
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 finite pairs or no spread."""
    from scipy.stats import rankdata

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx, ry = rankdata(x[ok]), rankdata(y[ok])
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def blocks(n: int, k: int = N_BLOCKS) -> list[np.ndarray]:
    """``k`` contiguous index blocks of ``range(n)`` (the clusters of a one-seed interval)."""
    return [b for b in np.array_split(np.arange(n), min(k, n)) if len(b)]


@dataclass
class Verdict:
    claim: str
    statistic: str
    value: float
    lo: float
    hi: float
    verdict: str  # supports | contradicts | inconclusive
    reason: str


def decide(claim: str, statistic: str, est: tuple[float, float, float], direction: str, threshold: float = 0.0,
           seeds: int = 0, per_update_ok: bool = True, margin: float | None = None) -> Verdict:  # fmt: skip
    """The decision rule (module docstring). ``direction``: ``">"`` (the claim says the statistic is above
    ``threshold``), ``"<"`` (below) or ``"no_increase"`` (the claim says it is not above 0: supported when the
    interval's upper end is below ``margin``, contradicted when its lower end is above 0)."""
    v, lo, hi = est
    if not per_update_ok:
        return Verdict(claim, statistic, v, lo, hi, "inconclusive", "TensorBoard window means, not per-update rows")
    if seeds < MIN_SEEDS:
        return Verdict(claim, statistic, v, lo, hi, "inconclusive", f"{seeds} seed(s) < {MIN_SEEDS}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Verdict(claim, statistic, v, lo, hi, "inconclusive", "no interval (too little data)")
    if direction == ">":
        verdict = "supports" if lo > threshold else "contradicts" if hi <= threshold else "inconclusive"
        why = f"95% interval vs {threshold:g}"
    elif direction == "<":
        verdict = "supports" if hi < threshold else "contradicts" if lo >= threshold else "inconclusive"
        why = f"95% interval vs {threshold:g}"
    elif direction == "no_increase":
        m = MARGIN if margin is None else margin
        verdict = "supports" if hi < m else "contradicts" if lo > 0 else "inconclusive"
        why = f"95% interval: upper end < {m:g} supports, lower end > 0 contradicts"
    else:
        raise ValueError(direction)
    if verdict == "inconclusive":
        why += " (the interval straddles it)"
    return Verdict(claim, statistic, v, lo, hi, verdict, why)


# ====================================================================== per-group analyses
def _groups(runs: list[Run]) -> dict[tuple[str, str], dict[str, list[tuple[Run, Stream]]]]:
    """``{(setting, stream): {method label: [(run, stream), ...]}}``."""
    out: dict[tuple[str, str], dict[str, list[tuple[Run, Stream]]]] = {}
    for r in runs:
        for s, st in r.streams.items():
            out.setdefault((r.setting, s), {}).setdefault(r.label, []).append((r, st))
    for g in out.values():
        for lst in g.values():
            lst.sort(key=lambda rs: rs[0].seed)
    return out


def _units(items: list[tuple[Run, Stream]]) -> list[Stream]:
    """The replication units: one stream per seed, or the blocks of a single run."""
    if len(items) >= 2:
        return [st for _, st in items]
    st = items[0][1]
    return [Stream(st.tasks, st.step[b], {c: v[b] for c, v in st.cols.items()}, st.source)
            for b in blocks(len(st.step))]  # fmt: skip


def log_ratio(st: Stream) -> np.ndarray:
    r = st.cols["imbalance_ratio"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(r) & (r > 0), np.log10(np.maximum(r, 1.0)), np.nan)


def failure_rate(units: list[Stream]) -> float:
    f = np.concatenate([u.cols["pareto_failure"] for u in units])
    f = f[np.isfinite(f)]
    return float(f.mean()) if len(f) else math.nan


def binned_failure(units: list[Stream], edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled failure rate and row count per bin of ``log10 r`` (``edges``, ascending)."""
    nb = len(edges) - 1
    fails, counts = np.zeros(nb), np.zeros(nb)
    for u in units:
        lr, f = log_ratio(u), u.cols["pareto_failure"]
        ok = np.isfinite(lr) & np.isfinite(f)
        b = np.clip(np.searchsorted(edges, lr[ok], side="right") - 1, 0, nb - 1)
        np.add.at(fails, b, f[ok])
        np.add.at(counts, b, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return fails / counts, counts


def trend(units: list[Stream], split: float) -> float:
    """Failure rate at ``log10 r > split`` minus that at ``<= split`` (rows pooled over the units)."""
    rates, _ = binned_failure(units, np.array([-np.inf, split, np.inf]))
    return float(rates[1] - rates[0])


def progress(st: Stream, bins: int) -> np.ndarray:
    """``r_i`` per span: ``[bins, K]`` (mean loss in span / mean loss in the first span; NaN where ``L_i(0) <= 0``)."""
    loss = st.cols["loss"]
    if loss.size == 0 or not np.isfinite(loss).any():
        return np.full((bins, len(st.tasks)), np.nan)
    lo, hi = st.step.min(), st.step.max()
    edges = np.linspace(lo, hi + 1, bins + 1)
    b = np.clip(np.searchsorted(edges, st.step, side="right") - 1, 0, bins - 1)
    out = np.full((bins, loss.shape[1]), np.nan)
    for i in range(bins):
        m = b == i
        if m.any():
            with np.errstate(invalid="ignore"):
                out[i] = np.nanmean(loss[m], axis=0) if np.isfinite(loss[m]).any() else np.nan
    first = out[np.flatnonzero(np.isfinite(out).any(axis=1))[0]] if np.isfinite(out).any() else out[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(first > 0, out / first, np.nan)


def spread(r_final: np.ndarray) -> float:
    """The gap between the individual progress of the tasks: ``max_i r_i − min_i r_i``."""
    ok = r_final[np.isfinite(r_final)]
    return float(ok.max() - ok.min()) if len(ok) >= 2 else math.nan


def time_grid(steps: list[np.ndarray], n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Span edges and their x positions for trajectories: one span per logged step when the runs have at most 50
    distinct steps (TensorBoard windows), else ``n`` equal spans."""
    u = np.unique(np.concatenate(steps))
    if len(u) <= 50:
        mids = 0.5 * (u[1:] + u[:-1])
        return np.concatenate([[-np.inf], mids, [np.inf]]), u.astype(np.float64)
    edges = np.linspace(u[0], u[-1] + 1, n + 1)
    return edges, 0.5 * (edges[1:] + edges[:-1])


def trajectory(st: Stream, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` in each span of ``edges`` (NaN where a span has none)."""
    bins = len(edges) - 1
    b = np.clip(np.searchsorted(edges, st.step, side="right") - 1, 0, bins - 1)
    out = np.full(bins, np.nan)
    for i in range(bins):
        m = (b == i) & np.isfinite(values)
        if m.any():
            out[i] = values[m].mean()
    return out


# ====================================================================== figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_FIGURES = {"on": True}


def _save(fig, out: Path, name: str, made: list[str]) -> None:
    if _FIGURES["on"]:
        fig.tight_layout()
        for ext in ("png", "pdf"):
            fig.savefig(out / f"{name}.{ext}", dpi=80)
        made.append(name)
    _plt().close(fig)


def _slug(*parts: str) -> str:
    return "_".join(p.replace("/", "-").replace("[", "(").replace("]", ")").replace(",", "-").replace("=", "")
                    for p in parts)  # fmt: skip


# ====================================================================== the analysis
def analyze(paths: list[str | Path], out: str | Path, bins: int = 5, boot: int = 2000,
            progress_bins: int = 10, figures: bool = True) -> dict[str, Any]:  # fmt: skip
    """Run every analysis on the runs under ``paths``; write CSVs, figures (PNG + PDF; ``figures=False``: none) and
    ``analysis.md`` to ``out``. Returns ``{"runs": [...], "verdicts": [...], "tables": {...}, "figures": [...]}``."""
    import warnings

    _FIGURES["on"] = figures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty spans and all-NaN columns are expected (NaN out)
        return _analyze(paths, out, bins, boot, progress_bins)


def _analyze(paths: list[str | Path], out: str | Path, bins: int, boot: int, progress_bins: int) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [r for r in (load_run(d) for d in find_runs(paths)) if r is not None]
    if not runs:
        raise FileNotFoundError(f"no runs with diagnostics under {', '.join(map(str, paths))}")
    plt = _plt()
    made: list[str] = []
    tables: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "runs", "imbalance", "pareto", "pareto_binned", "cos_phi", "progress", "weights", "cos_theta",
        "sensitivity")}  # fmt: skip
    verdicts: list[Verdict] = []
    for r in runs:
        for s, st in r.streams.items():
            tables["runs"].append({"run": _rel(r.path), "setting": r.setting, "stream": s, "method": r.label,
                                   "seed": r.seed, "source": st.source, "rows": len(st.step),
                                   "first_step": int(st.step[0]), "last_step": int(st.step[-1]),
                                   "outcome": r.outcome, "outcome_name": r.outcome_name})  # fmt: skip
    groups = _groups(runs)
    for (setting, stream), methods in sorted(groups.items()):
        key = _slug(setting, stream)
        labels = sorted(methods)
        raw = all(st.source == "raw" for items in methods.values() for _, st in items)
        colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(labels)}
        tasks = methods[labels[0]][0][1].tasks
        # ---------------- imbalance: distribution and trajectory
        pooled = np.concatenate([log_ratio(st) for items in methods.values() for _, st in items])
        pooled = pooled[np.isfinite(pooled)]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        grid, mid = time_grid([st.step for items in methods.values() for _, st in items])
        for m in labels:
            items = methods[m]
            per_seed = [float(np.nanmedian(log_ratio(st))) for _, st in items]
            est = mean_ci(per_seed, boot)
            p90 = mean_ci([float(np.nanpercentile(log_ratio(st), 90)) for _, st in items], boot)
            tables["imbalance"].append(
                {
                    "setting": setting,
                    "stream": stream,
                    "method": m,
                    "seeds": len(items),
                    "source": items[0][1].source,
                    "median_r": 10 ** est[0],
                    "median_r_lo": 10 ** est[1],
                    "median_r_hi": 10 ** est[2],
                    "p90_r": 10 ** p90[0],
                    "p90_r_lo": 10 ** p90[1],
                    "p90_r_hi": 10 ** p90[2],
                }
            )
            allv = np.concatenate([log_ratio(st) for _, st in items])
            allv = np.sort(allv[np.isfinite(allv)])
            if len(allv):
                ax1.plot(allv, np.arange(1, len(allv) + 1) / len(allv), color=colors[m], label=f"{m} ({len(items)})")
            trajs = np.array([trajectory(st, log_ratio(st), grid) for _, st in items])
            mean = np.nanmean(trajs, axis=0)
            ax2.plot(mid, mean, color=colors[m], label=m)
            if len(items) >= 2:
                ax2.fill_between(mid, np.nanmin(trajs, axis=0), np.nanmax(trajs, axis=0), color=colors[m], alpha=0.2)
        ax1.set_xlabel("log10 imbalance ratio r = max‖g_i‖/min‖g_i‖")
        ax1.set_ylabel("fraction of updates ≤ x (pooled over seeds)")
        ax1.set_title(f"{setting} [{stream}]: imbalance distribution")
        ax1.legend(title="method (seeds)", fontsize=8)
        ax2.set_xlabel(XLABEL[setting.split("/")[0]])
        ax2.set_ylabel("mean log10 r (band: min–max over seeds)")
        ax2.set_title("imbalance trajectory")
        ax2.legend(fontsize=8)
        _save(fig, out, f"imbalance_{key}", made)
        # ---------------- Pareto failures: overall and by imbalance bin
        edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1))) if len(pooled) else np.array([0.0, 1.0])
        if len(edges) < 2:
            edges = np.array([pooled.min() if len(pooled) else 0.0, (pooled.max() if len(pooled) else 0.0) + 1e-9])
        edges[0], edges[-1] = -np.inf, np.inf
        split = float(np.median(pooled)) if len(pooled) else 0.0
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        qs = np.quantile(pooled, np.linspace(0, 1, len(edges))) if len(pooled) else np.zeros(len(edges))
        centers = 0.5 * (qs[1:] + qs[:-1])
        for j, m in enumerate(labels):
            items = methods[m]
            units = _units(items)
            rate = rate_ci(per_unit(lambda u: failure_rate([u]), units), [st for _, st in items])
            tr = per_unit(lambda u, sp=split: trend([u], sp), units)
            rates, counts = binned_failure([st for _, st in items], edges)
            bin_ci = [per_unit(lambda u, k=k, e=edges: binned_failure([u], e)[0][k], units)
                      for k in range(len(edges) - 1)]  # fmt: skip
            tables["pareto"].append({"setting": setting, "stream": stream, "method": m, "seeds": len(items),
                                     "source": items[0][1].source, "failure_rate": rate[0], "lo": rate[1],
                                     "hi": rate[2], "high_minus_low": tr[0], "hml_lo": tr[1], "hml_hi": tr[2],
                                     "split_r": 10 ** split})  # fmt: skip
            for k in range(len(edges) - 1):
                tables["pareto_binned"].append(
                    {
                        "setting": setting,
                        "stream": stream,
                        "method": m,
                        "bin": k,
                        "r_from": 10 ** qs[k],
                        "r_to": 10 ** qs[k + 1],
                        "rows": int(counts[k]),
                        "failure_rate": rates[k],
                        "lo": bin_ci[k][1],
                        "hi": bin_ci[k][2],
                    }
                )
            ax1.bar(j, rate[0], color=colors[m])
            if np.isfinite(rate[1]):
                ax1.errorbar(j, rate[0], yerr=[[rate[0] - rate[1]], [rate[2] - rate[0]]], color="k", capsize=4)
            lo = np.array([c[1] for c in bin_ci])
            hi = np.array([c[2] for c in bin_ci])
            ax2.plot(centers, rates, "o-", color=colors[m], label=m)
            if np.isfinite(lo).any():
                ax2.fill_between(centers, lo, hi, color=colors[m], alpha=0.15)
        ax1.set_xticks(range(len(labels)))
        ax1.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax1.set_ylabel("Pareto-failure rate (some cos φ_ωi < 0)")
        ax1.set_title(f"{setting} [{stream}]: Pareto failures (95% CI)")
        ax2.set_xlabel("log10 imbalance ratio (bin centre; bins: quantiles of all methods' rows)")
        ax2.set_ylabel("Pareto-failure rate in bin")
        ax2.set_title("failure rate by imbalance")
        ax2.legend(fontsize=8)
        _save(fig, out, f"pareto_{key}", made)
        # ---------------- cos φ per task
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(tasks) + 3), 4))
        width = 0.8 / len(labels)
        for j, m in enumerate(labels):
            items = methods[m]
            means, los, his = [], [], []
            for i, t in enumerate(tasks):
                per_seed = [float(np.nanmean(st.cols["cos_to_direction"][:, i])) for _, st in items]
                neg = [float(np.nanmean(st.cols["cos_to_direction"][:, i] < 0)) for _, st in items]
                e, n = mean_ci(per_seed, boot), mean_ci(neg, boot)
                tables["cos_phi"].append({"setting": setting, "stream": stream, "method": m, "task": t,
                                          "mean_cos_phi": e[0], "lo": e[1], "hi": e[2], "frac_negative": n[0],
                                          "neg_lo": n[1], "neg_hi": n[2]})  # fmt: skip
                means.append(e[0])
                los.append(e[0] - e[1] if np.isfinite(e[1]) else 0.0)
                his.append(e[2] - e[0] if np.isfinite(e[2]) else 0.0)
            x = np.arange(len(tasks)) + (j - (len(labels) - 1) / 2) * width
            ax.bar(x, means, width, yerr=[los, his], color=colors[m], label=m, capsize=2)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("mean cos φ_ωi = cos(g_i, d)  (95% CI over seeds)")
        ax.set_title(f"{setting} [{stream}]: task gradient vs combined direction")
        ax.legend(fontsize=8)
        _save(fig, out, f"cos_phi_{key}", made)
        # ---------------- individual progress r_i(t) and its spread
        fig, axes = plt.subplots(1, len(labels) + 1, figsize=(3.6 * (len(labels) + 1), 3.8), squeeze=False)
        x = np.arange(progress_bins)
        for j, m in enumerate(labels):
            items = methods[m]
            prog = np.array([progress(st, progress_bins) for _, st in items])  # [S, bins, K]
            ax = axes[0][j]
            for i, t in enumerate(tasks):
                ax.plot(x, np.nanmean(prog[:, :, i], axis=0), label=t)
                fin = mean_ci(prog[:, -1, i], boot)
                tables["progress"].append(
                    {
                        "setting": setting,
                        "stream": stream,
                        "method": m,
                        "task": t,
                        "final_r": fin[0],
                        "lo": fin[1],
                        "hi": fin[2],
                    }
                )
            sp = [spread(p[-1]) for p in prog]
            e = mean_ci(sp, boot)
            tables["progress"].append({"setting": setting, "stream": stream, "method": m, "task": "(spread max-min)",
                                       "final_r": e[0], "lo": e[1], "hi": e[2]})  # fmt: skip
            ax.set_title(m, fontsize=9)
            ax.set_xlabel(f"training span (1/{progress_bins} each)")
            ax.set_ylabel("r_i(t) = L_i(t)/L_i(0)")
            spreads = np.array([[spread(p[b]) for b in range(progress_bins)] for p in prog])
            axes[0][-1].plot(x, np.nanmean(spreads, axis=0), color=colors[m], label=m)
        axes[0][0].legend(fontsize=6)
        axes[0][-1].set_title("spread: max_i r_i − min_i r_i", fontsize=9)
        axes[0][-1].set_xlabel(f"training span (1/{progress_bins} each)")
        axes[0][-1].set_ylabel("spread (mean over seeds)")
        axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"{setting} [{stream}]: individual progress (Eq. 1)")
        _save(fig, out, f"progress_{key}", made)
        # ---------------- weights
        fig, axes = plt.subplots(1, len(labels), figsize=(3.8 * len(labels), 3.6), squeeze=False)
        for j, m in enumerate(labels):
            items = methods[m]
            ax = axes[0][j]
            for i, t in enumerate(tasks):
                per_seed = [float(np.nanmean(st.cols["weight"][:, i])) for _, st in items]
                e = mean_ci(per_seed, boot)
                tables["weights"].append(
                    {
                        "setting": setting,
                        "stream": stream,
                        "method": m,
                        "task": t,
                        "mean_weight": e[0],
                        "lo": e[1],
                        "hi": e[2],
                    }
                )
                tr = np.array([trajectory(st, st.cols["weight"][:, i], grid) for _, st in items])
                ax.plot(mid, np.nanmean(tr, axis=0), label=t)
            ax.set_title(m, fontsize=9)
            ax.set_xlabel(XLABEL[setting.split("/")[0]])
            ax.set_ylabel("weight w_i (mean over seeds)")
        axes[0][0].legend(fontsize=6)
        fig.suptitle(f"{setting} [{stream}]: aggregation weights (NaN: the method reports none)")
        _save(fig, out, f"weights_{key}", made)
        # ---------------- cos θ vs imbalance ratio (every method; the paper's claim is about IMGrad)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for m in labels:
            items = methods[m]
            units = _units(items)
            e = per_unit(lambda u: spearman(log_ratio(u), u.cols["cos_theta"]), units)
            e = (e[0], max(-1.0, e[1]), min(1.0, e[2]))  # a t interval of a correlation, clipped to [-1, 1]
            bl, bh = spearman_boot([(log_ratio(st), st.cols["cos_theta"]) for _, st in items], boot)
            pooled_rho = spearman(np.concatenate([log_ratio(st) for _, st in items]),
                                  np.concatenate([st.cols["cos_theta"] for _, st in items]))  # fmt: skip
            tables["cos_theta"].append({"setting": setting, "stream": stream, "method": m, "seeds": len(items),
                                        "source": items[0][1].source, "spearman_mean_over_seeds": e[0], "lo": e[1],
                                        "hi": e[2], "boot_lo": bl, "boot_hi": bh,
                                        "spearman_pooled": pooled_rho})  # fmt: skip
            lr = np.concatenate([log_ratio(st) for _, st in items])
            ct = np.concatenate([st.cols["cos_theta"] for _, st in items])
            sub = np.linspace(0, len(lr) - 1, min(len(lr), 3000)).astype(int)
            ax.scatter(lr[sub], ct[sub], s=4, alpha=0.35, color=colors[m], label=f"{m}: ρ={e[0]:+.2f}")
        ax.set_xlabel("log10 imbalance ratio r")
        ax.set_ylabel("cos θ (g0 vs MGDA point, Eq. 9)")
        ax.set_title(f"{setting} [{stream}]: cos θ vs imbalance")
        ax.legend(fontsize=8, markerscale=3)
        _save(fig, out, f"cos_theta_{key}", made)
        verdicts += _claims(setting, stream, methods, tables, raw, boot, split)
    verdicts += _sensitivity(runs, tables, out, made, boot)
    for name, rows in tables.items():
        _write_csv(out / f"{name}.csv", rows)
    _write_md(out, runs, tables, verdicts, made, paths)
    return {"runs": runs, "verdicts": verdicts, "tables": tables, "figures": made}


# ====================================================================== the paper's claims
def _row(tables: dict, name: str, setting: str, stream: str, method: str, **match: Any) -> dict[str, Any] | None:
    for r in tables[name]:
        if r["setting"] == setting and r["stream"] == stream and r["method"] == method and \
                all(r.get(k) == v for k, v in match.items()):  # fmt: skip
            return r
    return None


def _diff_ci(units_a: list[Stream], units_b: list[Stream], stat) -> tuple[float, float, float]:
    """``stat`` per unit of a and of b, then the Welch interval of the difference of their means."""
    return welch_diff([stat([u]) for u in units_a], [stat([u]) for u in units_b])


def _needs_failures(v: Verdict, items: list[tuple[Run, Stream]]) -> Verdict:
    """A trend of the failure rate needs failures to measure: fewer than ``MIN_FAILURES`` makes it inconclusive."""
    n = int(sum(np.nansum(st.cols["pareto_failure"]) for _, st in items))
    if n < MIN_FAILURES and v.verdict != "inconclusive":
        v.verdict, v.reason = "inconclusive", f"only {n} failing update(s) in all seeds (< {MIN_FAILURES}): no trend"
    return v


def _claims(setting: str, stream: str, methods: dict[str, list[tuple[Run, Stream]]], tables: dict, raw: bool,
            boot: int, split: float) -> list[Verdict]:  # fmt: skip
    """The paper's claims that the methods present in this setting and stream can test."""
    out: list[Verdict] = []
    where = f"{setting} [{stream}]"
    seeds = {m: len(v) for m, v in methods.items()}
    for m, items in methods.items():
        per_seed = [float(np.nanmedian(log_ratio(st))) for _, st in items]
        e = mean_ci(per_seed, boot)
        out.append(decide(f"{where}: training is imbalanced under {m} (§4.1; median r > {IMBALANCED:g})",
                          "median imbalance ratio r (geometric mean over seeds)", (10 ** e[0], 10 ** e[1], 10 ** e[2]),
                          ">", IMBALANCED, seeds[m], raw))  # fmt: skip
    for other in ("cagrad", "nashmtl"):
        if other in methods:
            pr = _row(tables, "pareto", setting, stream, other)
            out.append(decide(f"{where}: {other} has Pareto failures (§4.2, Fig. 4a-b)", "failure rate",
                              (pr["failure_rate"], pr["lo"], pr["hi"]), ">", 0.0, seeds[other], True))  # fmt: skip
            v = decide(
                f"{where}: {other} fails more often as imbalance grows (§4.2)",
                f"rate(r > {10**split:.3g}) − rate(r ≤ {10**split:.3g})",
                (pr["high_minus_low"], pr["hml_lo"], pr["hml_hi"]),
                ">",
                0.0,
                seeds[other],
                raw,
            )
            out.append(_needs_failures(v, methods[other]))
        if other in methods and "imgrad" in methods:
            d = rate_diff_ci(
                _diff_ci(_units(methods["imgrad"]), _units(methods[other]), failure_rate),
                [st for _, st in methods["imgrad"]],
                [st for _, st in methods[other]],
            )
            out.append(decide(f"{where}: imgrad has fewer Pareto failures than {other} (§4.2)",
                              "failure rate imgrad − " + other, d, "<", 0.0, min(seeds["imgrad"], seeds[other]),
                              True))  # fmt: skip
    if "imgrad" in methods:
        pr = _row(tables, "pareto", setting, stream, "imgrad")
        v = decide(f"{where}: imgrad does not fail more often as imbalance grows (§4.2)",
                   "rate(high r) − rate(low r)", (pr["high_minus_low"], pr["hml_lo"], pr["hml_hi"]),
                   "no_increase", 0.0, seeds["imgrad"], raw)  # fmt: skip
        out.append(_needs_failures(v, methods["imgrad"]))
        ct = _row(tables, "cos_theta", setting, stream, "imgrad")
        v = decide(f"{where}: cos θ correlates negatively with the imbalance ratio under imgrad (§5.1)",
                   "Spearman ρ(log r, cos θ), mean over seeds", (ct["spearman_mean_over_seeds"], ct["lo"], ct["hi"]),
                   "<", 0.0, seeds["imgrad"], raw)  # fmt: skip
        v.reason += f"; row-bootstrap interval [{_f(ct['boot_lo'])}, {_f(ct['boot_hi'])}]"
        out.append(v)

    def spread_stat(us: list[Stream]) -> float:
        return float(np.nanmean([spread(progress(u, 10)[-1]) for u in us]))

    pairs = [
        ("nashmtl", "cagrad", "§4.2, Fig. 4d-e: Nash-MTL's individual progress is more balanced than CAGrad's"),
        ("imgrad", "cagrad", "§4.2/§7: imgrad's individual progress is more balanced than CAGrad's"),
    ]
    for a, b, text in pairs:
        if a in methods and b in methods and len(methods[a]) >= 2 and len(methods[b]) >= 2:
            d = _diff_ci([st for _, st in methods[a]], [st for _, st in methods[b]], spread_stat)
            out.append(decide(f"{where}: {text}", f"final progress spread {a} − {b}", d, "<", 0.0,
                              min(seeds[a], seeds[b]), True))  # fmt: skip
        elif a in methods and b in methods:
            out.append(Verdict(f"{where}: {text}", f"final progress spread {a} − {b}", math.nan, math.nan, math.nan,
                               "inconclusive", "fewer than 2 seeds"))  # fmt: skip
    return out


def _sensitivity(runs: list[Run], tables: dict, out: Path, made: list[str], boot: int) -> list[Verdict]:
    """Outcome and failure rate against each swept hyperparameter of a method (IMGrad's ``a``/``c``, the threshold
    method's ``threshold``): a method present with at least two values of one keyword argument."""
    from scipy.stats import friedmanchisquare, kruskal, wilcoxon

    verdicts: list[Verdict] = []
    plt = _plt()
    by: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by.setdefault((r.setting, r.method), []).append(r)
    for (setting, method), rs in sorted(by.items()):
        keys = sorted({k for r in rs for k, v in r.kwargs.items() if not isinstance(v, dict)})
        for k in keys:
            values = sorted({r.kwargs[k] for r in rs if k in r.kwargs}, key=lambda v: (str(type(v)), v))
            if len(values) < 2:
                continue
            others = {kk for kk in keys if kk != k}
            fig, ax = plt.subplots(figsize=(6.5, 4.2))
            groups: list[list[float]] = []
            paired: list[dict[int, float]] = []  # per value: seed -> outcome (mean over the other swept keys)
            xs, ms, los, his, frs = [], [], [], [], []
            for v in values:
                sel = [r for r in rs if r.kwargs.get(k) == v]
                # the other swept keys are averaged over (a grid); their spread is in the per-setting rows
                per_seed: dict[int, list[float]] = {}
                for r in sel:
                    if r.outcome is not None:
                        per_seed.setdefault(r.seed, []).append(r.outcome)
                paired.append({sd: float(np.mean(o)) for sd, o in per_seed.items()})
                outcomes = list(paired[-1].values())
                e = mean_ci(outcomes, boot)
                st_key = next(iter(sel[0].streams))
                fr = rate_ci(mean_ci([float(np.nanmean(r.streams[st_key].cols["pareto_failure"])) for r in sel
                                      if st_key in r.streams], boot), [r.streams[st_key] for r in sel])  # fmt: skip
                tables["sensitivity"].append({"setting": setting, "method": method, "param": k, "value": v,
                                              "runs": len(sel), "outcome": e[0], "lo": e[1], "hi": e[2],
                                              "outcome_name": sel[0].outcome_name, "stream": st_key,
                                              "failure_rate": fr[0], "fr_lo": fr[1], "fr_hi": fr[2],
                                              "averaged_over": ",".join(sorted(others))})  # fmt: skip
                groups.append(outcomes)
                xs.append(float(v) if isinstance(v, (int, float)) else len(xs))
                ms.append(e[0])
                los.append(e[0] - e[1] if np.isfinite(e[1]) else 0.0)
                his.append(e[2] - e[0] if np.isfinite(e[2]) else 0.0)
                frs.append(fr[0])
            ax.errorbar(xs, ms, yerr=[los, his], fmt="o-", capsize=4, label=rs[0].outcome_name or "outcome")
            ax.set_xlabel(f"{method}.{k}")
            ax.set_ylabel(rs[0].outcome_name or "outcome")
            ax2 = ax.twinx()
            ax2.plot(xs, frs, "s--", color="tab:red", label="Pareto-failure rate")
            ax2.set_ylabel("Pareto-failure rate", color="tab:red")
            pos = [x for x in xs if x > 0]
            if len(pos) == len(xs) and max(pos) / min(pos) > 20:
                ax.set_xscale("log")
            ax.set_title(f"{setting}: {method} vs {k}\n(mean, 95% CI over seeds/starts)", fontsize=10)
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=8)
            _save(fig, out, f"sensitivity_{_slug(setting, method, k)}", made)
            ok = [g for g in groups if len(g) >= 2]
            n_min = min((len(g) for g in groups), default=0)
            claim = (f"{setting}: the outcome of {method} varies with {k} (§4.3 Fig. 5a for the threshold; "
                     f"μ sensitivity for imgrad a/c)")  # fmt: skip
            seeds = set(paired[0]) if paired else set()
            matched = len(seeds) >= MIN_SEEDS and all(set(d) == seeds for d in paired)
            if matched and any(np.std(g) > 0 for g in groups):  # same seeds/starts at every value: a paired test
                cols = [[d[sd] for sd in sorted(seeds)] for d in paired]
                if len(cols) >= 3:
                    p, test = float(friedmanchisquare(*cols).pvalue), "Friedman p over the values (paired by seed)"
                else:
                    diff = np.subtract(cols[1], cols[0])
                    p = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
                    test = "Wilcoxon signed-rank p (paired by seed)"
                verdicts.append(
                    Verdict(
                        claim,
                        test,
                        p,
                        math.nan,
                        math.nan,
                        "supports" if p < 0.05 else "inconclusive",
                        "p < 0.05 supports; otherwise no detectable dependence (inconclusive)",
                    )
                )
            elif len(ok) >= 2 and n_min >= MIN_SEEDS and any(np.std(g) > 0 for g in ok):
                p = float(kruskal(*ok).pvalue)
                verdicts.append(
                    Verdict(
                        claim,
                        "Kruskal–Wallis p over the values",
                        p,
                        math.nan,
                        math.nan,
                        "supports" if p < 0.05 else "inconclusive",
                        "p < 0.05 supports; otherwise no detectable dependence (inconclusive)",
                    )
                )
            else:
                verdicts.append(
                    Verdict(
                        claim,
                        "Kruskal–Wallis p",
                        math.nan,
                        math.nan,
                        math.nan,
                        "inconclusive",
                        f"fewer than {MIN_SEEDS} replicates per value or no spread",
                    )
                )
            if method == "threshold" and k == "threshold" and len(values) >= 3:
                verdicts.append(_beats_vanilla(setting, values, groups, rs[0], paired if matched else None))
    return verdicts


def _t_ratio(n: int, level: float) -> float:
    """How much wider a t interval at ``level`` is than at 95% (``n`` values)."""
    from scipy.stats import t as student

    return float(student.ppf(0.5 + level / 2, n - 1) / student.ppf(0.975, n - 1)) if n >= 2 else math.nan


def _beats_vanilla(setting: str, values: list[Any], groups: list[list[float]], run: Run,
                   paired: list[dict[int, float]] | None = None) -> Verdict:  # fmt: skip
    """IMGrad §4.3 (Fig. 5a): some threshold beats the vanilla base method. The smallest threshold swept is taken as
    the vanilla method (``threshold=1``: the base at every update with r > 1) and the largest as LS; each value in
    between is compared with it at the Bonferroni level ``1 − 0.05/m`` (m values compared): a paired t interval of
    the per-seed differences when every value has the same seeds (``paired``), else Welch's interval."""
    lower_better = run.kind != "rl"
    vanilla, middle = groups[0], list(zip(values[1:-1], groups[1:-1]))
    claim = f"{setting}: some threshold beats the vanilla base method (§4.3, Fig. 5a; vanilla = threshold {values[0]})"
    level = 1 - 0.05 / max(len(middle), 1)
    best = None
    for j, (v, g) in enumerate(middle, start=1):
        if paired is not None:
            sds = sorted(paired[0])
            diffs = np.array([paired[j][sd] - paired[0][sd] for sd in sds])
            m, lo, hi = mean_ci(diffs)
            h = (hi - m) * _t_ratio(len(diffs), level) if np.isfinite(hi) else math.nan
            d = (m, m - h, m + h)
        else:
            d = welch_diff(g, vanilla, level)
        gain = (-d[0], -d[2], -d[1]) if lower_better else d  # > 0: better than vanilla
        if best is None or (np.isfinite(gain[0]) and gain[0] > best[1][0]):
            best = (v, gain)
    n_min = min((len(g) for g in groups), default=0)
    if best is None:
        return Verdict(claim, "gain over vanilla", math.nan, math.nan, math.nan, "inconclusive", "no threshold between")
    v = decide(
        claim,
        f"gain of threshold {best[0]} over vanilla ({run.outcome_name}; Bonferroni {level:.3g} CI)",
        best[1],
        ">",
        0.0,
        n_min,
        True,
    )
    if v.verdict == "contradicts":  # one threshold not beating vanilla does not contradict "some threshold does"
        v.verdict, v.reason = "inconclusive", "the best threshold's interval is not above 0 (others are worse)"
    return v


# ====================================================================== writing
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    if not rows:
        path.write_text("")
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _f(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _write_md(out: Path, runs: list[Run], tables: dict, verdicts: list[Verdict], made: list[str],
              paths: list[str | Path]) -> None:  # fmt: skip
    n_set = sorted({(r.setting, r.label) for r in runs})
    sources = sorted({st.source for r in runs for st in r.streams.values()})
    lines = [
        f"# Analysis: {', '.join(str(p) for p in paths)}",
        "",
        f"{len(runs)} runs; settings and methods (seeds): "
        + "; ".join(f"{s} {m} ({sum(1 for r in runs if r.setting == s and r.label == m)})" for s, m in n_set)
        + f". Diagnostics source: {', '.join(sources)} (raw = per-update rows of `diagnostics/`, tensorboard = "
        "window means of `train.log_every`).",
        "",
        "**Decision rule.** *supports* / *contradicts* only when each method involved has ≥ "
        f"{MIN_SEEDS} seeds, the data can measure the statistic (per-update rows for medians, binned rates "
        "and correlations; window means still give overall failure rates) and its 95% interval (Student-t over "
        "seeds; Welch for differences) lies entirely on one side of the stated "
        f"threshold; a claim of *no increase* needs the interval's upper end below {MARGIN}. Anything else is "
        "*inconclusive*, with the reason. Short runs and synthetic data say nothing about the paper's "
        "benchmarks: a verdict here is about these runs only.",
        "",
        "| claim (paper section) | statistic | value [95% CI] | verdict | why |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.claim} | {v.statistic} | {_f(v.value)} [{_f(v.lo)}, {_f(v.hi)}] | **{v.verdict}** | {v.reason} |"
        )
    lines += [
        "",
        "Pareto-failure rate and imbalance per method (95% CI over seeds; r: geometric mean over seeds of "
        "each seed's median):",
        "",
        "| setting [stream] | method | seeds | median r [CI] | failure rate [CI] | high−low r [CI] | "
        "Spearman ρ(log r, cos θ) [CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in tables["pareto"]:
        im = _row(tables, "imbalance", p["setting"], p["stream"], p["method"])
        ct = _row(tables, "cos_theta", p["setting"], p["stream"], p["method"])
        lines.append(
            f"| {p['setting']} [{p['stream']}] | {p['method']} | {p['seeds']} | {_f(im['median_r'])} "
            f"[{_f(im['median_r_lo'])}, {_f(im['median_r_hi'])}] | {_f(p['failure_rate'])} "
            f"[{_f(p['lo'])}, {_f(p['hi'])}] | {_f(p['high_minus_low'])} [{_f(p['hml_lo'])}, "
            f"{_f(p['hml_hi'])}] | {_f(ct['spearman_mean_over_seeds'])} [{_f(ct['lo'])}, {_f(ct['hi'])}] |"
        )
    if tables["sensitivity"]:
        lines += [
            "",
            "Sensitivity (outcome and failure rate per value; 95% CI over seeds/starts):",
            "",
            "| setting | method | param | value | runs | outcome [CI] | failure rate |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in tables["sensitivity"]:
            lines.append(
                f"| {s['setting']} | {s['method']} | {s['param']} | {s['value']} | {s['runs']} | "
                f"{_f(s['outcome'])} [{_f(s['lo'])}, {_f(s['hi'])}] ({s['outcome_name']}) | "
                f"{_f(s['failure_rate'])} |"
            )
    notes = []
    if "tensorboard" in sources:
        notes.append(
            "Runs without `diagnostics/` were read from TensorBoard: each row is a `train.log_every` window "
            "mean (the failure value is the window's failure fraction, r the window's mean ratio), so "
            "distributions are of window means, and binned rates and correlations cannot be judged."
        )
    if any(r.kind == "rl" for r in runs):
        notes.append(
            "RL: `critic` and `actor` are separate aggregations (separate rows). r_i(t) there is a ratio of "
            "TD / actor losses whose targets move with the policy: not a progress measure in the paper's "
            "sense (Eq. 1 is for fixed supervised losses); read it as a description only."
        )
    if any(r.kind == "toy" for r in runs):
        notes.append(
            "Toy: each start is a replicate (the 5 starts of IMGrad Fig. 2), the losses are the weighted "
            "ones the method sees; they can be negative, where r_i(t) is undefined (NaN). The outcome is "
            "the distance of the final point to the optimum of the mean loss (lower is better)."
        )
    notes.append(
        f"A trend of the failure rate with imbalance needs ≥ {MIN_FAILURES} failing updates; the imbalance "
        "bins are quantiles of all methods' rows of the setting and stream, the high/low split is their "
        "median."
    )
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    lines += [
        "",
        "Figures (PNG and PDF): " + ", ".join(f"[{m}]({m}.png)" for m in made),
        "",
        "Tables: " + ", ".join(f"[{n}.csv]({n}.csv)" for n in tables),
        "",
    ]
    (out / "analysis.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="analyze", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+", help="run directories or sweep directories (searched at any depth)")
    p.add_argument("--out", required=True, help="output directory (analysis.md, CSVs, figures)")
    p.add_argument("--bins", type=int, default=5, help="imbalance-ratio bins (quantiles of all rows), default 5")
    p.add_argument("--progress-bins", type=int, default=10, help="training spans for r_i(t), default 10")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples, default 2000")
    args = p.parse_args(argv)
    missing = [x for x in args.paths if not Path(x).exists()]
    if missing:
        print(f"analyze: error: no such path: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.bins < 2 or args.progress_bins < 2 or args.boot < 100:
        print("analyze: error: --bins and --progress-bins must be >= 2, --boot >= 100", file=sys.stderr)
        return 2
    try:
        res = analyze(args.paths, args.out, bins=args.bins, boot=args.boot, progress_bins=args.progress_bins)
    except FileNotFoundError as e:
        print(f"analyze: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{len(res['runs'])} runs, {len(res['figures'])} figures, {len(res['verdicts'])} claims -> "
        f"{Path(args.out) / 'analysis.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
