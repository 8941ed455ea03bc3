"""The papers' tables as data: rows, the mtrl overrides that run them, the published numbers and their sources.

One YAML file per table (``mt10.yaml``, ``nyuv2.yaml``, ``cityscapes.yaml``, ``celeba.yaml``; SPEC §10). A table
names the entry point that runs a row (``mtrl.train`` or ``mtrl.supervised.train``), the metric the paper publishes
(which file of a run holds it, which key, which progress key, which direction is better), its budgets (``paper``,
``smoke``, and how a fraction scales the run) and its rows. ``python -m mtrl.reproduce`` launches them,
``scripts/report.py --table`` compares a finished directory with them (:func:`compare`, :func:`verdict`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TABLE_DIR = Path(__file__).resolve().parent
#: the verdicts of :func:`verdict`
VERDICTS = ("consistent", "lower", "higher", "incomplete")


class TableError(ValueError):
    """A table name, row or budget that does not exist or cannot be read; reported as one line."""


@dataclass(frozen=True)
class Row:
    """One row of a published table: ``id`` (lowercase, e.g. ``cagrad``), the paper's ``label``, the overrides of
    ``entry`` that run it, the published mean, SEM (None when the paper gives none) and seed count, and the source
    of its settings."""

    id: str
    label: str
    overrides: tuple[str, ...]
    mean: float
    sem: float | None
    seeds: int
    source: str


@dataclass(frozen=True)
class Table:
    """A published table (see the module docstring); ``path`` is its YAML file."""

    name: str
    title: str
    entry: str
    metric: dict[str, Any]
    budget: dict[str, Any]
    rows: tuple[Row, ...]
    path: Path = field(compare=False)

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise TableError(f"unknown row {row_id!r} of table {self.name}; valid: {', '.join(self.row_ids)}")

    @property
    def row_ids(self) -> list[str]:
        return [r.id for r in self.rows]

    @property
    def paper_length(self) -> int:
        """The published run length (the budget's ``length`` key at ``paper``), e.g. 2,000,000 steps per task."""
        return int(self.budget["paper"][self.budget["length"]])


def available() -> list[str]:
    """The names of the tables shipped in the package."""
    return sorted(p.stem for p in TABLE_DIR.glob("*.yaml"))


def load_table(name_or_path: str | Path) -> Table:
    """A table by its name (``mt10``) or the path of a YAML file in the same form (tests use a fake-env table)."""
    p = Path(str(name_or_path))
    if p.suffix not in (".yaml", ".yml"):
        p = TABLE_DIR / f"{name_or_path}.yaml"
        if not p.is_file():
            raise TableError(f"unknown table {name_or_path!r}; valid: {', '.join(available())} (or a path to a .yaml)")
    elif not p.is_file():
        raise TableError(f"table file {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
        rows = tuple(
            Row(
                id=str(r["id"]),
                label=str(r.get("label", r["id"])),
                overrides=tuple(str(o) for o in r.get("overrides", [])),
                mean=float(r["published"]["mean"]),
                sem=None if r["published"].get("sem") is None else float(r["published"]["sem"]),
                seeds=int(r["published"]["seeds"]),
                source=str(r.get("source", "")).strip(),
            )
            for r in raw["rows"]
        )
        table = Table(str(raw["name"]), str(raw.get("title", raw["name"])), str(raw["entry"]), dict(raw["metric"]),
                      dict(raw["budget"]), rows, p)  # fmt: skip
        table.paper_length  # noqa: B018 - the budget must name its length key
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise TableError(f"table {p} cannot be read ({type(err).__name__}: {err})") from None
    return table


# ------------------------------------------------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """A resolved budget: its name as given (``paper``, ``smoke``, ``0.1``, ``200000``), the fraction of the
    paper's length it runs, and the overrides that set the run length, evaluation schedule and warm-up."""

    name: str
    fraction: float
    values: dict[str, Any]

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values.items()]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fraction": self.fraction, "values": dict(self.values)}


def resolve_budget(table: Table, budget: str | float | int) -> Budget:
    """``paper`` (the published run), ``smoke`` (the table's tiny run), a fraction in (0, 1] of the paper's run,
    or a run length (an integer > 1, in the unit of the table's length key: steps per task, epochs). A fraction
    scales every key of the paper budget (rounded, at least the table's ``min``); evaluations and checkpoints are
    never rarer than once per run."""
    b = table.budget
    text = str(budget).strip()
    paper = dict(b["paper"])
    length_key = str(b["length"])
    if text == "paper":
        return Budget("paper", 1.0, paper)
    if text == "smoke":
        values = {**paper, **dict(b["smoke"])}
        return Budget("smoke", float(values[length_key]) / table.paper_length, values)
    try:
        num = float(text)
    except ValueError:
        num = float("nan")
    if not math.isfinite(num) or num <= 0:
        raise TableError(f"bad budget {text!r}: use paper, smoke, a fraction in (0, 1] or a run length "
                         f"({length_key}, an integer > 1)")  # fmt: skip
    if num > 1:
        if num != int(num):
            raise TableError(f"bad budget {text!r}: a run length ({length_key}) must be an integer")
        fraction = num / table.paper_length
        if fraction > 1:
            raise TableError(f"bad budget {text!r}: longer than the paper's {length_key}={table.paper_length}")
    else:
        fraction = num
    mins = dict(b.get("min", {}))
    values = {k: max(int(round(v * fraction)), int(mins.get(k, 1))) if isinstance(v, int) else v
              for k, v in paper.items()}  # fmt: skip
    if num > 1:
        values[length_key] = int(num)
    total = values[length_key]
    for k in values:  # at least one evaluation/checkpoint per run, and never a warm-up longer than the run
        if k != length_key and isinstance(values[k], int) and values[k] > total:
            values[k] = total
    if fraction == 1.0:
        return Budget("paper", 1.0, paper)
    return Budget(text, fraction, values)


# ------------------------------------------------------------------------------------------- reading and verdicts
def read_records(run_dir: Path, table: Table, with_metric: bool = True) -> list[dict[str, Any]]:
    """The records of one run (``eval.jsonl`` or ``metrics.jsonl``), sorted by progress; unreadable lines skipped,
    and records without a value of the metric too unless ``with_metric`` is False (a run's progress counts every
    record: CelebA's Δm% is null, for example, since mtrl has no single-task bases for it)."""
    path = Path(run_dir) / str(table.metric["file"])
    if not path.is_file():
        return []
    key, prog = str(table.metric["key"]), str(table.metric["progress"])
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get(prog), int):
            if not with_metric or isinstance(rec.get(key), (int, float)):
                out.append(rec)
    return sorted(out, key=lambda r: r[prog])


def run_budget(run_dir: Path) -> dict[str, Any] | None:
    """The budget ``mtrl.reproduce`` wrote into a run directory (``reproduce.json``), or None."""
    try:
        return json.loads((Path(run_dir) / "reproduce.json").read_text())["budget"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verdict(pub_mean: float, pub_sem: float | None, mean: float, sem: float, complete: bool) -> str:
    """``incomplete`` unless ``complete`` (full budget and the published seed count); else ``consistent`` when
    the means differ by less than two combined SEMs (``2 sqrt(sem_pub² + sem_mtrl²)``; a missing published SEM
    counts as 0), ``lower`` or ``higher`` (mtrl's number against the published one, whatever the metric's
    direction) otherwise."""
    if not complete or not math.isfinite(mean):
        return "incomplete"
    combined = math.sqrt((pub_sem or 0.0) ** 2 + (sem if math.isfinite(sem) else 0.0) ** 2)
    diff = mean - pub_mean
    if abs(diff) < 2 * combined:
        return "consistent"
    return "lower" if diff < 0 else "higher"


def _sem(x: list[float]) -> float:
    n = len(x)
    if n < 2:
        return float("nan")
    m = sum(x) / n
    return math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1) / n)


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def compare(out: Path, table: Table, last_k: int = 3) -> list[dict[str, Any]]:
    """Per row of ``table``: the published mean ± SEM and seed count, and over the runs ``out/<row>/seed_<n>``
    that reached their budget: mtrl's final score (mean of each run's last ``last_k`` records), mean ± SEM, the
    95% t-interval (clipped to the metric's ``range`` when the table gives one), the number of seeds, the smallest
    budget reached (progress of the last record, and as a fraction of the paper's), and the :func:`verdict`."""
    rows = []
    length_key = str(table.budget["length"])
    for row in table.rows:
        finals, reached, budgets = [], [], set()
        for run in sorted(Path(out, row.id).glob("seed_*")):
            recs = read_records(run, table)
            every = read_records(run, table, with_metric=False)
            b = run_budget(run)
            total = int(b["values"][length_key]) if b else table.paper_length
            if b:
                budgets.add(str(b["name"]))
            if not recs or every[-1][table.metric["progress"]] < total:
                continue  # not finished at its own budget, or no value of the metric: not counted
            finals.append(sum(float(r[table.metric["key"]]) for r in recs[-last_k:]) / len(recs[-last_k:]))
            reached.append(int(recs[-1][table.metric["progress"]]))
        n = len(finals)
        mean = sum(finals) / n if n else float("nan")
        sem = _sem(finals)
        half = _t95(n) * sem if n > 1 else float("nan")
        low, high = table.metric.get("range") or (-math.inf, math.inf)  # e.g. success lies in [0, 1]
        least = min(reached) if reached else 0
        complete = n >= row.seeds and least >= table.paper_length
        rows.append({
            "row": row.id, "label": row.label, "published_mean": row.mean, "published_sem": row.sem,
            "published_seeds": row.seeds, "mean": mean, "sem": sem,
            "ci_low": max(mean - half, low), "ci_high": min(mean + half, high),
            "n_seeds": n, "reached": least, "reached_fraction": least / table.paper_length,
            "budgets": ",".join(sorted(budgets)) or "unknown",
            "verdict": verdict(row.mean, row.sem, mean, sem, complete),
        })  # fmt: skip
    return rows
