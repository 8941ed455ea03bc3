"""The single owner of checkpoints: atomic writes, keep-last-N, integrity and compatibility checks.

File format: a one-line header ``mtrl-checkpoint v1 sha256=<hex>\\n`` followed by a ``torch.save`` payload of
tensors and plain Python types only (loaded with ``weights_only=True``: no pickled objects, the replay buffer is
arrays). The digest detects truncated or corrupted files; a ``fingerprint`` (env, tasks, sizes, architecture,
aggregator, ...) detects a checkpoint from a different run configuration. Either way the checkpoint is refused with
a one-line reason and left where it is. Writes go to a temp file in the same directory, are fsynced and renamed
over the final name, so a crash never leaves a half-written ``ckpt_*.pt``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import torch

MAGIC = b"mtrl-checkpoint v1 sha256="
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, unreadable or from a different configuration)."""


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
    with open(tmp, "wb") as f:
        f.write(MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    for old in list_checkpoints(d)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return final


def load_checkpoint(path: str | Path, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and verify a checkpoint; compare its fingerprint with ``fingerprint`` (the current run's).

    Raises:
        CheckpointError: unreadable, corrupt (digest mismatch) or mismatched checkpoint. The file is not touched.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {p}: {e.strerror or e}") from None
    header, sep, data = raw.partition(b"\n")
    if not sep or not header.startswith(MAGIC):
        raise CheckpointError(f"checkpoint {p} is not an mtrl checkpoint (bad header); refusing to resume, file kept")
    if hashlib.sha256(data).hexdigest().encode() != header[len(MAGIC) :]:
        raise CheckpointError(f"checkpoint {p} is corrupt (checksum mismatch); refusing to resume, file kept")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error means the same thing here
        msg = f"checkpoint {p} cannot be loaded ({type(e).__name__}); refusing to resume, file kept"
        raise CheckpointError(msg) from None
    if fingerprint is not None:  # every key of either side (a key on one side only is a mismatch)
        theirs = payload.get("fingerprint", {})
        keys = list(fingerprint) + [k for k in theirs if k not in fingerprint]
        diff = [
            f"{k}: checkpoint {theirs.get(k)!r} vs run {fingerprint.get(k)!r}"
            for k in keys
            if theirs.get(k) != fingerprint.get(k)
        ]
        if diff:
            raise CheckpointError(
                f"checkpoint {p} does not match this run ({'; '.join(diff)}); refusing to resume, file kept"
            )
    return payload
