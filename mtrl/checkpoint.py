"""The single owner of checkpoints: atomic writes, keep-last-N, integrity and compatibility checks.

File format: a one-line header ``mtrl-checkpoint v1 sha256=<hex>\\n`` followed by a ``torch.save`` payload of
tensors and plain Python types only (loaded with ``weights_only=True``: no pickled objects, the replay buffer is
arrays). The digest detects truncated or corrupted files; a ``fingerprint`` (env, tasks, sizes, architecture,
aggregator, ...) detects a checkpoint from a different run configuration. Either way the checkpoint is refused with
a one-line reason and left where it is. Writes go to a temp file in the same directory, are fsynced and renamed
over the final name, so a crash never leaves a half-written ``ckpt_*.pt``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

MAGIC = b"mtrl-checkpoint v1 sha256="
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
_TMP = re.compile(r"^\.ckpt_\d+\.pt\.tmp\d*$")
ABANDONED = "abandoned"  # sub-directory of a checkpoint directory: checkpoints of a branch a resume left behind
log = logging.getLogger("mtrl.checkpoint")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, unreadable or from a different configuration)."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that is unreadable or damaged (as opposed to one of another configuration)."""


_HELD: dict[Path, Any] = {}  # run directories this process has locked (a second lock_run_dir returns the same)


class RunLockedError(RuntimeError):
    """Another process is writing into the same run directory."""


def lock_run_dir(directory: str | Path, prog: str = "mtrl") -> Any:
    """Take an exclusive lock on ``<directory>/.lock`` for the life of the process (or until the returned file is
    closed); a second run in the same directory raises :class:`RunLockedError` before writing anything."""
    d = Path(directory)
    held = _HELD.get(d.resolve())
    if held is not None and not held.closed:
        return held
    d.mkdir(parents=True, exist_ok=True)
    f = open(d / ".lock", "a+")  # noqa: SIM115 - held open for the run's duration
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        owner = f.read().strip()
        f.close()
        who = f" (pid {owner})" if owner else ""
        raise RunLockedError(f"run directory {d} is in use by another run{who}; refusing to write into it") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[d.resolve()] = f
    return f


def remove_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files a killed checkpoint write left behind (call with the run directory locked)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    gone = [p for p in d.iterdir() if _TMP.match(p.name)]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def checkpoint_step(path: str | Path) -> int | None:
    m = _NAME.match(Path(path).name)
    return int(m.group(1)) if m else None


def abandon_newer(directory: str | Path, step: int) -> list[Path]:
    """Move the checkpoints newer than ``step`` (a branch a resume from an older checkpoint leaves behind) into
    ``<directory>/abandoned/``, so that a later ``resume=true`` can never pick them."""
    d = Path(directory)
    newer = [p for p in list_checkpoints(d) if (checkpoint_step(p) or 0) > step]
    if newer:
        (d / ABANDONED).mkdir(exist_ok=True)
        for p in newer:
            os.replace(p, d / ABANDONED / p.name)
    return newer


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"ckpt_{step:010d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoints in ``directory``, oldest first (by step)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def continued_run_dir(resume: Any) -> Path | None:
    """The run directory a ``resume=`` setting continues in: a run directory itself, or the run owning a
    checkpoint file (``<run>/checkpoints/ckpt_*.pt``); None for ``true``/``false`` (the caller's own directory).
    RL and supervised training both write a resumed run's logs, metrics and checkpoints there."""
    if resume is True or resume in (False, None, "true", "false"):
        return None
    p = Path(str(resume))
    if p.is_file():
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p if p.is_dir() else None


def resume_checkpoint_path(resume: Any, ckpt_dir: str | Path) -> Path | None:
    """The checkpoint a ``resume=`` setting names: ``false`` -> None; ``true`` -> the newest in ``ckpt_dir``
    (None if there is none yet); a run directory -> its newest (error if none); a file -> that file."""
    if resume is False or resume in (None, "false"):
        return None
    if resume is True or resume == "true":
        return latest_checkpoint(ckpt_dir)
    p = Path(str(resume))
    if p.is_dir():
        found = latest_checkpoint(p / "checkpoints") or latest_checkpoint(p)
        if found is None:
            raise CheckpointError(f"resume={resume}: no checkpoint (ckpt_*.pt) in that directory")
        return found
    if not p.exists():
        raise CheckpointError(f"resume={resume}: no such file or directory")
    return p


def save_checkpoint(directory: str | Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``payload`` as the checkpoint of ``step`` atomically, then delete all but the newest ``keep``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    final = checkpoint_path(d, step)
    tmp = d / f".{final.name}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = ", ".join(p.name for p in list_checkpoints(d)) or "none"
        what = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise CheckpointError(
            f"cannot write checkpoint {final} ({what}): partial file removed, older checkpoints kept ({kept})"
        ) from None
    for old in list_checkpoints(d)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return final


def load_checkpoint(
    path: str | Path, fingerprint: dict[str, Any] | None = None, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Read and verify a checkpoint; compare its fingerprint with ``fingerprint`` (the current run's), except the
    keys in ``skip`` (those not known yet, e.g. sizes read from the built envs).

    Raises:
        CheckpointError: unreadable, corrupt (digest mismatch) or mismatched checkpoint. The file is not touched.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise CorruptCheckpointError(f"cannot read checkpoint {p}: {e.strerror or e}") from None
    header, sep, data = raw.partition(b"\n")
    if not sep or not header.startswith(MAGIC):
        msg = f"checkpoint {p} is not an mtrl checkpoint (bad header); refusing to resume, file kept"
        raise CorruptCheckpointError(msg)
    if hashlib.sha256(data).hexdigest().encode() != header[len(MAGIC) :]:
        raise CorruptCheckpointError(f"checkpoint {p} is corrupt (checksum mismatch); refusing to resume, file kept")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error means the same thing here
        msg = f"checkpoint {p} cannot be loaded ({type(e).__name__}); refusing to resume, file kept"
        raise CorruptCheckpointError(msg) from None
    if fingerprint is not None:  # every key of either side (a key on one side only is a mismatch)
        theirs = payload.get("fingerprint", {})
        keys = list(fingerprint) + [k for k in theirs if k not in fingerprint]
        diff = [
            f"{k}: checkpoint {theirs.get(k)!r} vs run {fingerprint.get(k)!r}"
            for k in keys
            if k not in skip and theirs.get(k) != fingerprint.get(k)
        ]
        if diff:
            raise CheckpointError(
                f"checkpoint {p} does not match this run ({'; '.join(diff)}); refusing to resume, file kept"
            )
    return payload


def find_resume_checkpoint(
    resume: Any, ckpt_dir: str | Path, fingerprint: dict[str, Any] | None = None, skip: tuple[str, ...] = ()
) -> tuple[Path, dict[str, Any]] | None:
    """Load the checkpoint a ``resume=`` setting names (see :func:`resume_checkpoint_path`).

    For ``true`` or a run directory, a corrupt or unreadable newest checkpoint is reported (one warning line) and
    the next older intact one is used; a checkpoint of another configuration is refused, never skipped. A named
    file is used or refused as it is. Returns ``(path, payload)``, or None where there is nothing to resume.
    """
    path = resume_checkpoint_path(resume, ckpt_dir)
    if path is None:
        return None
    named_file = not (resume is True or resume == "true") and not Path(str(resume)).is_dir()
    candidates = [path] if named_file else [p for p in reversed(list_checkpoints(path.parent)) if p != path]
    if not named_file:
        candidates.insert(0, path)
    for i, p in enumerate(candidates):
        try:
            return p, load_checkpoint(p, fingerprint, skip)
        except CorruptCheckpointError as err:
            if i + 1 == len(candidates):
                raise
            log.warning("%s; falling back to the older %s", err, candidates[i + 1].name)
    return None
