"""Small file helpers shared by the RL and supervised trainers: atomic text writes and a JSONL record file."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, fsync it and rename it over ``path`` (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None and err.errno is not None:  # fsync/write errors name no file: name the target
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


log = logging.getLogger("mtrl")
_TMP = re.compile(r"^\..+\.tmp\d+$")


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temp files of :func:`atomic_write_text` that a killed process left in ``directory``
    (call with the run directory locked)."""
    if not Path(directory).is_dir():
        return []
    gone = [p for p in Path(directory).iterdir() if p.is_file() and _TMP.match(p.name)]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


class JsonlRecords:
    """A list of JSON records mirrored to ``path`` (rewritten atomically at each append).

    ``restore(key, up_to, saved)`` is for resumed runs: it keeps the file's records whose ``key`` is at most
    ``up_to`` (later ones belong to the lost future of the interrupted run) and rewrites the file with them. When
    the checkpoint carries its own copy of the records (``saved``) and the file lacks some of them (emptied,
    truncated, deleted), the file is rebuilt from that copy, with one warning line; without a copy, a file with no
    record up to ``up_to`` gets a warning line that the history before the resume is lost.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._write()

    def restore(self, key: str, up_to: int, saved: list[dict[str, Any]] | None = None) -> None:
        self.records = []
        if self.path.exists():
            for ln in self.path.read_text().splitlines():
                try:
                    r = json.loads(ln) if ln.strip() else None
                    keep = r is not None and int(r[key]) <= up_to
                except (ValueError, KeyError, TypeError):  # a damaged line (e.g. a kill mid-write of an old version)
                    log.warning("%s: dropping an unreadable line: %.80s", self.path, ln)
                    continue
                if keep:
                    self.records.append(r)
        if saved is not None:
            saved = [r for r in saved if int(r[key]) <= up_to]
            have = [int(r[key]) for r in self.records]
            if have != [int(r[key]) for r in saved]:
                log.warning("%s held %d of the checkpoint's %d records up to %s %d: rebuilt from the checkpoint",
                            self.path, len(have), len(saved), key, up_to)  # fmt: skip
                self.records = [dict(r) for r in saved]
        elif not self.records and up_to > 0:
            log.warning("%s has no record up to %s %d and the checkpoint has no copy (an older format): the "
                        "history before this resume is lost", self.path, key, up_to)  # fmt: skip
        self._write()

    def _write(self) -> None:
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
