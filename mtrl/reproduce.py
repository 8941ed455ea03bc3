"""A paper's table from one command: run or submit every (row, seed) that is not finished, resume the unfinished.

    python -m mtrl.reproduce table=mt10 seeds=10 budget=paper launcher=slurm out=DIR
    python -m mtrl.reproduce table=mt10 seeds=2 budget=smoke launcher=local out=DIR rows=[cagrad,imgrad]
    python -m mtrl.reproduce table=mt10 seeds=10 budget=paper out=DIR status=true     # what is done, running, ...
    python -m mtrl.reproduce table=mt10 seeds=10 budget=paper out=DIR dry_run=true    # what would be launched

Arguments (``key=value``):

- ``table``: a table of the package (``mt10``, ``nyuv2``, ``cityscapes``, ``celeba``; :mod:`mtrl.tables`) or the
  path of a YAML file in the same form;
- ``out``: the table's directory; run ``(row, seed n)`` lives in ``out/<row>/seed_<n>`` (seeds ``1..seeds``);
- ``seeds`` (default: the published seed count), ``rows`` (default: all; ``rows=[ls,cagrad]``);
- ``budget``: ``paper`` | ``smoke`` | a fraction in (0, 1] | a run length (steps per task, epochs): scales the run
  length, the evaluation schedule and the warm-up (:func:`mtrl.tables.resolve_budget`); written into
  ``out/reproduce.json`` and every run's ``reproduce.json``, and read back by ``scripts/report.py --table``;
- ``launcher``: ``local`` (default) | ``slurm`` | ``ray`` (:mod:`mtrl.launch`), with ``launcher.<key>=<value>``
  options passed to that engine as they are (``launcher.n_jobs=2``, ``launcher.partition=...``);
- ``status=true``: print the state of every run (done / running / resumable / failed / not started) and launch
  nothing; ``dry_run=true``: print what would be launched, launch nothing;
- anything else (``env=fake``, ``data.root=/data/nyuv2``) is added to every run's overrides.

Every run is launched with ``resume=true`` in its own directory, so invoking this again is always safe: finished
runs are skipped, running ones (their directory is locked) are left alone, the others continue from their newest
checkpoint, or start. A directory started with one budget, table or set of extra overrides refuses another (one
line), so a smoke table can never pass for the paper's. Bad input costs one line and exit status 2 before
anything is launched; a failed run makes the exit status 1 (local engine).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtrl import _cli
from mtrl._io import atomic_write_text
from mtrl.launch import ENGINES, Job
from mtrl.tables import TABLE_DIR, Budget, Table, TableError, load_table, read_records, resolve_budget

PROG = "mtrl.reproduce"
KEYS = ("table", "out", "seeds", "rows", "budget", "launcher", "status", "dry_run")
STATES = ("done", "running", "resumable", "failed", "not started")
#: per entry point: its Hydra config, its open kwargs key and the check a composed config must pass
ENTRIES = {
    "mtrl.train": ("train", "agent.aggregator_kwargs", "mtrl.train", "check_config"),
    "mtrl.supervised.train": ("supervised", "aggregator_kwargs", "mtrl.supervised.trainer", "check_config"),
}
RESERVED = ("seed", "resume", "out_dir")  # set per run by this command


@dataclass
class Args:
    """The parsed command line."""

    table: Table
    out: Path
    seeds: int
    rows: list[str]
    budget: Budget
    launcher: str
    options: dict[str, Any]
    extra: list[str]
    status: bool
    dry_run: bool


def _value(text: str) -> Any:
    """``launcher.<key>`` values: int, float, true/false/null, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _list(text: str) -> list[str]:
    return [x.strip().strip("'\"") for x in text.strip().strip("[]").split(",") if x.strip()]


def _bool(key: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise TableError(f"{key} must be true or false, got {text!r}")
    return text.lower() == "true"


def parse(argv: list[str]) -> Args:
    """Parse ``key=value`` arguments; any mistake raises :class:`TableError` with one line."""
    given: dict[str, str] = {}
    options: dict[str, Any] = {}
    extra: list[str] = []
    for a in argv:
        if "=" not in a:
            raise TableError(f"expected key=value, got {a!r} (keys: {', '.join(KEYS)}, launcher.<option>, or "
                             "training overrides)")  # fmt: skip
        key, val = a.split("=", 1)
        if key in KEYS:
            given[key] = val
        elif key.startswith("launcher."):
            options[key[len("launcher.") :]] = _value(val)
        elif key.lstrip("+~") in RESERVED or key.lstrip("+~").startswith("hydra"):
            raise TableError(f"{key} is set per run by {PROG} (seeds=N gives seeds 1..N; out= the directories)")
        else:
            extra.append(a)
    if "table" not in given:
        raise TableError("table= is required (e.g. table=mt10)")
    if "out" not in given or not given["out"]:
        raise TableError("out= is required: the directory of the table's runs")
    table = load_table(given["table"])
    rows = _list(given["rows"]) if "rows" in given else table.row_ids
    if not rows:
        raise TableError("rows= is empty")
    for r in rows:
        table.row(r)
    seeds_text = given.get("seeds", str(max(r.seeds for r in table.rows)))
    try:
        seeds = int(seeds_text)
    except ValueError:
        seeds = 0
    if seeds < 1:
        raise TableError(f"seeds must be an integer >= 1, got {seeds_text!r}")
    launcher = given.get("launcher", "local")
    if launcher not in ENGINES:
        raise TableError(f"unknown launcher {launcher!r}; valid: {', '.join(ENGINES)}")
    return Args(table=table, out=Path(given["out"]), seeds=seeds, rows=list(dict.fromkeys(rows)),
                budget=resolve_budget(table, given.get("budget", "paper")), launcher=launcher, options=options,
                extra=extra, status=_bool("status", given.get("status", "false")),
                dry_run=_bool("dry_run", given.get("dry_run", "false")))  # fmt: skip


# ------------------------------------------------------------------------------------------------- runs and states
def run_dir(out: Path, row: str, seed: int) -> Path:
    return Path(out) / row / f"seed_{seed}"


def run_overrides(args: Args, row: str, seed: int) -> list[str]:
    """The overrides of one run: the row's, the budget's, the user's extra ones, the seed."""
    return [*args.table.row(row).overrides, *args.budget.overrides, *args.extra, f"seed={seed}"]


def _locked(d: Path) -> bool:
    """True when a run holds ``d/.lock`` (mtrl.checkpoint.lock_run_dir); never creates the file."""
    lock = d / ".lock"
    if not lock.exists():
        return False
    try:
        with open(lock) as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _last_attempt(d: Path) -> dict[str, Any] | None:
    try:
        lines = [ln for ln in (d / "launch.jsonl").read_text().splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def run_state(table: Table, d: Path, length: int) -> tuple[str, int]:
    """The state of one run directory (one of :data:`STATES`) and its progress (the last record's step/epoch).
    Done: its last record reached ``length``. Running: a process holds its lock. Failed: its last launch ended
    with an error (an interrupted run, exit 130/143, is resumable). Resumable: it has a checkpoint or records."""
    recs = read_records(d, table, with_metric=False)
    progress = int(recs[-1][table.metric["progress"]]) if recs else 0
    if recs and progress >= length:
        return "done", progress
    if _locked(d):
        return "running", progress
    last = _last_attempt(d)
    if last is not None and last.get("rc") not in (0, 130, 143, None):
        return "failed", progress
    ckpts = d / "checkpoints"
    if recs or (ckpts.is_dir() and any(ckpts.glob("*.pt"))):
        return "resumable", progress
    return "not started", progress


def states(args: Args) -> dict[tuple[str, int], tuple[str, int]]:
    length = int(args.budget.values[args.table.budget["length"]])
    return {(r, s): run_state(args.table, run_dir(args.out, r, s), length)
            for r in args.rows for s in range(1, args.seeds + 1)}  # fmt: skip


# ------------------------------------------------------------------------------------------------------- checks
def check_runs(args: Args) -> None:
    """Compose every row's config with the budget and the extra overrides and run the entry point's check: a bad
    override or preset costs one line (naming the row) before anything is launched."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mtrl._paths import config_dir

    if args.table.entry not in ENTRIES:
        raise TableError(f"table {args.table.name}: unknown entry {args.table.entry!r}; valid: {', '.join(ENTRIES)}")
    config_name, kwargs_key, module, fn = ENTRIES[args.table.entry]
    check = getattr(importlib.import_module(module), fn)
    errors = (ValueError, TypeError, KeyError)
    hydra_error = None
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for row in args.rows:
            overrides = _cli.rewrite_argv(run_overrides(args, row, 1), kwargs_key, _cli.GROUP_ALIASES.get(config_name))
            try:
                check(compose(config_name=config_name, overrides=overrides))
            except (HydraException, OmegaConfBaseException) as err:
                hydra_error = (row, str(err), overrides)  # explained outside: _one_line composes again
                break
            except errors as err:
                raise TableError(f"row {row}: {err}") from None
    if hydra_error is not None:
        row, text, overrides = hydra_error
        raise TableError(f"row {row}: {_cli._one_line(text, config_name, overrides)}")


def _header(args: Args) -> dict[str, Any]:
    path = args.table.path
    shipped = path.parent == TABLE_DIR  # a package table: named by its place in the package, not this machine's path
    return {"table": args.table.name, "table_file": f"mtrl/tables/{path.name}" if shipped else str(path),
            "budget": args.budget.as_dict(),
            "extra_overrides": list(args.extra)}  # fmt: skip


def check_out(args: Args) -> None:
    """``out/reproduce.json`` records the table, budget and extra overrides the directory was started with; a
    different one is refused (one line), so runs of two budgets never mix in one table."""
    path = args.out / "reproduce.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise TableError(f"{path} is not readable JSON; move it away to start over") from None
    new = _header(args)
    for key, what in (("table", "table"), ("budget", "budget"), ("extra_overrides", "extra overrides")):
        if old.get(key) != new[key]:
            was = old.get(key, {}).get("name") if key == "budget" else old.get(key)
            now = new[key]["name"] if key == "budget" else new[key]
            if key == "budget" and was == now:
                was, now = old.get(key, {}).get("values"), new[key]["values"]
            raise TableError(f"{args.out} was started with {what} {was!r}, not {now!r}; continue it with the same "
                             f"{what} or use another out=")  # fmt: skip


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def print_status(args: Args, st: dict[tuple[str, int], tuple[str, int]]) -> None:
    length_key = args.table.budget["length"]
    length = int(args.budget.values[length_key])
    print(f"table {args.table.name}, budget {args.budget.name} ({length_key}={length}, "
          f"{100 * args.budget.fraction:.3g}% of the paper's), {args.seeds} seed(s), out {args.out}")  # fmt: skip
    width = max(len(r) for r in args.rows)
    cells = {}
    for (r, s), (state, prog) in st.items():
        cells[(r, s)] = state if state in ("done", "not started") else f"{state} {prog}/{length}"
    colw = max(max(len(c) for c in cells.values()), 7)
    print(" " * width + "  " + "  ".join(f"seed_{s}".ljust(colw) for s in range(1, args.seeds + 1)))
    for r in args.rows:
        print(r.ljust(width) + "  " + "  ".join(cells[(r, s)].ljust(colw) for s in range(1, args.seeds + 1)))
    counts = {k: sum(v[0] == k for v in st.values()) for k in STATES}
    print(", ".join(f"{k} {v}" for k, v in counts.items()))


def main(argv: list[str] | None = None) -> int:
    """``python -m mtrl.reproduce key=value ...`` (module docstring); returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    t0 = time.time()
    try:
        args = parse(argv)
        check_out(args)
        if not args.status:
            check_runs(args)
    except TableError as err:
        _cli.fail(PROG, str(err))
    st = states(args)
    if args.status:
        print_status(args, st)
        return 0
    todo = [(r, s) for (r, s), (state, _) in st.items() if state not in ("done", "running")]
    skipped = {k: sum(v[0] == k for v in st.values()) for k in ("done", "running")}
    jobs = [Job(f"{r}/seed_{s}", run_dir(args.out, r, s), tuple(run_overrides(args, r, s)), args.table.entry)
            for r, s in todo]  # fmt: skip
    print(
        f"{PROG}: table {args.table.name}, budget {args.budget.name}, launcher {args.launcher}: "
        f"{len(jobs)} run(s) to launch, {skipped['done']} done, {skipped['running']} running (left alone)"
    )
    if args.dry_run:
        for (r, s), job in zip(todo, jobs):
            print(f"  {job.name} ({st[(r, s)][0]}): python -m {job.module} {' '.join(job.argv())}")
        return 0
    if not jobs:
        print_status(args, st)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    header = _header(args) | {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if not (args.out / "reproduce.json").is_file():
        atomic_write_text(args.out / "reproduce.json", json.dumps(header, indent=1) + "\n")
    for (r, s), job in zip(todo, jobs):
        job.run_dir.mkdir(parents=True, exist_ok=True)
        info = {"table": args.table.name, "row": r, "seed": s, "entry": job.module, "overrides": list(job.overrides),
                "budget": args.budget.as_dict()}  # fmt: skip
        atomic_write_text(job.run_dir / "reproduce.json", json.dumps(info, indent=1) + "\n")
    from mtrl.launch import launch

    status = 0
    try:
        launch(jobs, args.launcher, args.options)
    except ModuleNotFoundError as err:
        if err.name != f"mtrl.launch._{args.launcher}":
            raise
        _cli.fail(PROG, f"launcher={args.launcher} is not available in this version (no {err.name})")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except ValueError as err:  # bad engine options: nothing was launched
        _cli.fail(PROG, str(err))
    except RuntimeError as err:  # failed jobs (local), a refused submission
        print(f"{PROG}: error: {err}", file=sys.stderr)
        status = 1
    if args.launcher == "local":
        print_status(args, states(args))
        name = args.table.name if args.table.path.parent == TABLE_DIR else args.table.path
        print(f"{PROG}: {_seconds(time.time() - t0)}; report: python scripts/report.py {args.out} --table {name}")
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
