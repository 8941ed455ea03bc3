"""Raw per-update aggregator diagnostics of one run: ``<run dir>/diagnostics/<stream>.bin`` (issue 22).

TensorBoard keeps window means (``train.log_every``), which cannot give a distribution, a rate per imbalance bin or a
rank correlation. This file keeps every diagnostic update's values (RL: one row every ``agent.diagnostics_every``
updates; supervised: one row per iteration; toy: one row per Adam step of each start), one file per aggregated loss:

- ``stream`` ``critic``, ``actor``, ``alpha`` (RL, the aggregators of ``agent.aggregate_on``, kept apart), ``shared``
  (supervised: the shared parameters), ``toy`` (``python -m mtrl.toy``).
- ``<stream>.bin``: fixed-size little-endian records, appended; ``<stream>.json``: the schema (``tasks``, numpy
  ``dtype`` as ``[name, type, shape]`` triples, ``row_bytes``, ``x`` naming what ``step`` counts).

Columns (K tasks; ``f4`` = float32, ``i8`` = int64): ``update`` (i8: RL the agent's update count after this update,
supervised the iteration, toy the Adam step), ``step`` (i8: the x-axis of TensorBoard: env steps per task / the
iteration / the Adam step), ``loss`` (f4[K]: the per-task losses of this update; NaN where the stream has none),
``grad_norm``, ``cos_to_direction``, ``weight`` (f4[K]; NaN when the method reports no weights), ``imbalance_ratio``,
``cos_theta``, ``conflict_frac``, ``pareto_failure`` (f4). The definitions are those of
:func:`mtrl.aggregators._diagnostics.diagnostics` (IMGrad paper Defs. 1-3, Eq. 9).

Size: ``16 + 4 (4K + 4)`` bytes a row, 192 B for K = 10 (MT10), 832 B for K = 50; per 1M RL updates at the default
``agent.diagnostics_every=10``: 1e5 rows, 19.2 MB per stream (38.4 MB for critic + actor). Supervised NYUv2 (K = 3,
one row per iteration): 80 B a row, 80 MB per 1M iterations.

Durability and resume: rows are buffered and appended at each ``flush`` (the trainers call it at every log write and
before every checkpoint, so a checkpoint never refers to rows that are not on disk). On resume the file is cut back to
the rows with ``step <= `` the checkpoint's step (and a torn last record, from a kill during a write, is dropped), so
a resumed run's file is byte-identical to an uninterrupted one's (``tests/test_analyze.py``). A fresh start empties it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mtrl._io import atomic_write_text

DIAG_DIR = "diagnostics"
FORMAT = "mtrl-diagnostics"
VERSION = 1
SCALARS = ("imbalance_ratio", "cos_theta", "conflict_frac", "pareto_failure")
PER_TASK = {"grad_norm": "grad_norms", "cos_to_direction": "cos_to_direction", "weight": "weights"}  # column: stats key


def row_dtype(num_tasks: int) -> np.dtype:
    """The record layout for ``num_tasks`` tasks (see the module docstring)."""
    K = int(num_tasks)
    fields: list[tuple[Any, ...]] = [("update", "<i8"), ("step", "<i8"), ("loss", "<f4", (K,))]
    fields += [(c, "<f4", (K,)) for c in PER_TASK]
    fields += [(c, "<f4") for c in SCALARS]
    return np.dtype(fields)


def _dtype_json(dt: np.dtype) -> list[list[Any]]:
    out = []
    for name in dt.names:
        sub = dt.fields[name][0]
        base, shape = (sub.base, list(sub.shape)) if sub.shape else (sub, [])
        out.append([name, base.str, shape])
    return out


def _dtype_from_json(spec: list[list[Any]]) -> np.dtype:
    return np.dtype([(n, t, tuple(s)) if s else (n, t) for n, t, s in spec])


class DiagnosticsWriter:
    """Appends raw diagnostic rows of one stream to ``<run_dir>/diagnostics/<stream>.bin``.

    Args:
        run_dir: the run directory.
        stream: ``critic`` / ``actor`` / ``alpha`` / ``shared`` / ``toy``.
        tasks: task names (K columns).
        x: what ``step`` counts (written into the schema).
        keep_up_to: ``None`` (a fresh start): the file is emptied; an int (a resume): the rows with
            ``step <= keep_up_to`` are kept, later ones (the interrupted run's lost future) dropped.
        capacity: rows buffered in memory between two writes (a full buffer is written at once).
    """

    def __init__(self, run_dir: str | Path, stream: str, tasks: list[str], x: str = "step",
                 keep_up_to: int | None = None, capacity: int = 4096) -> None:  # fmt: skip
        self.dir = Path(run_dir) / DIAG_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{stream}.bin"
        self.K = len(tasks)
        self.dtype = row_dtype(self.K)
        self.buf = np.zeros(int(capacity), dtype=self.dtype)
        self.n = 0
        schema = {"format": FORMAT, "version": VERSION, "stream": stream, "tasks": list(tasks), "x": x,
                  "row_bytes": self.dtype.itemsize, "dtype": _dtype_json(self.dtype)}  # fmt: skip
        atomic_write_text(self.dir / f"{stream}.json", json.dumps(schema, indent=1) + "\n")
        if keep_up_to is None:
            self.path.write_bytes(b"")
        else:
            truncate(self.path, self.dtype, int(keep_up_to))

    def add(self, update: int, step: int, stats: dict[str, Any], losses: Any = None) -> None:
        """Buffer one row from an aggregator result's ``stats`` and the update's per-task ``losses``."""
        if self.n == len(self.buf):
            self.flush()
        r = self.buf[self.n]
        r["update"], r["step"] = update, step
        r["loss"] = np.nan if losses is None else np.asarray(losses, dtype=np.float32)
        for col, key in PER_TASK.items():
            v = stats.get(key)
            r[col] = np.nan if v is None or len(v) != self.K else v
        for col in SCALARS:
            v = stats.get(col)
            r[col] = np.nan if v is None else v
        self.n += 1

    def flush(self, sync: bool = False) -> None:
        """Append the buffered rows (``sync``: and fsync, before a checkpoint)."""
        if self.n == 0 and not sync:
            return
        with open(self.path, "ab") as f:
            f.write(self.buf[: self.n].tobytes())
            f.flush()
            if sync:
                os.fsync(f.fileno())
        self.n = 0


def truncate(path: Path, dtype: np.dtype, keep_up_to: int) -> int:
    """Cut ``path`` back to its whole records with ``step <= keep_up_to``; return how many are kept."""
    if not path.exists():
        path.write_bytes(b"")
        return 0
    size = path.stat().st_size
    n = size // dtype.itemsize
    steps = np.fromfile(path, dtype=dtype, count=n)["step"] if n else np.zeros(0, dtype=np.int64)
    later = np.flatnonzero(steps > keep_up_to)  # steps never decrease; the first later row ends what is kept
    keep = int(later[0]) if len(later) else n
    if keep * dtype.itemsize != size:
        with open(path, "r+b") as f:
            f.truncate(keep * dtype.itemsize)
    return keep


def read_stream(run_dir: str | Path, stream: str) -> tuple[dict[str, Any], np.ndarray]:
    """The schema and the rows (a structured array) of one stream; a torn last record is ignored."""
    d = Path(run_dir) / DIAG_DIR
    schema = json.loads((d / f"{stream}.json").read_text())
    if schema.get("format") != FORMAT:
        raise ValueError(f"{d / f'{stream}.json'}: not an mtrl diagnostics schema")
    dt = _dtype_from_json(schema["dtype"])
    path = d / f"{stream}.bin"
    n = path.stat().st_size // dt.itemsize if path.exists() else 0
    rows = np.fromfile(path, dtype=dt, count=n) if n else np.zeros(0, dtype=dt)
    return schema, rows


def streams(run_dir: str | Path) -> list[str]:
    """The streams a run directory has (``critic``, ``actor``, ...), in a fixed order."""
    d = Path(run_dir) / DIAG_DIR
    if not d.is_dir():
        return []
    names = sorted(p.stem for p in d.glob("*.json"))
    order = {"critic": 0, "actor": 1, "alpha": 2, "shared": 3, "toy": 4}
    return sorted(names, key=lambda s: (order.get(s, 9), s))
