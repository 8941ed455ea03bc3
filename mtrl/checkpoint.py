"""The single owner of checkpoints: atomic writes, keep-last-N, integrity and compatibility checks.

File format: a one-line header ``mtrl-checkpoint v<N> sha256=<hex>\\n`` followed by a ``torch.save`` payload of
tensors and plain Python types only (loaded with ``weights_only=True``: no pickled objects, the replay buffer is
arrays). The digest detects truncated or corrupted files; a ``fingerprint`` (env, tasks, sizes, architecture,
aggregator, ...) detects a checkpoint from a different run configuration. Either way the checkpoint is refused with
a one-line reason and left where it is. Writes go to a temp file in the same directory, are fsynced and renamed
over the final name, so a crash never leaves a half-written ``ckpt_*.pt``.

Format versions (``N`` in the header, :data:`FORMAT_VERSION`): v1 (before issue 21) and v2 (v1 plus the run's
evaluation records, ``evals``, from which a resume rebuilds a lost ``eval.jsonl``) are read; v1 is migrated by
reading it as it is (a resume from it cannot rebuild ``eval.jsonl``, and says so). Any other version is refused
with one line naming the version, so a checkpoint of a newer mtrl is never half-understood.

The run directory rules (issue 21) live here too: :func:`lock_run_dir` (one process writes into a directory at a
time; any OSError on the directory is one line), :func:`held_run` / :func:`refuse_reuse` (a directory that
holds a run is refused unless ``resume`` is set) and :func:`clear_lost_run` (``resume=true`` with no checkpoint
starts fresh: the lost run's evaluations and TensorBoard events go first). See ``docs/faults.md``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAGIC = f"mtrl-checkpoint v{FORMAT_VERSION} sha256=".encode()
_HEADER = re.compile(rb"^mtrl-checkpoint v(\d+) sha256=([0-9a-f]{64})$")
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
_TMP = re.compile(r"^\.ckpt_\d+\.pt\.tmp\d*$")
ABANDONED = "abandoned"  # sub-directory of a checkpoint directory: checkpoints of a branch a resume left behind
log = logging.getLogger("mtrl.checkpoint")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, unreadable or from a different configuration)."""


@contextmanager
def restoring(path: str | Path) -> Iterator[None]:
    """Loading a checkpoint's state into live objects (``load_state_dict`` of modules, optimisers, buffers, RNGs):
    a checkpoint of another code version (a missing key, a renamed parameter, other shapes) becomes one line, a
    :class:`CheckpointError`, and the file is kept. Shared by the RL and supervised trainers."""
    try:
        yield
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
        why = str(err).strip().split("\n")[0][:200]
        raise CheckpointError(
            f"checkpoint {path} cannot be restored into this code version "
            f"({type(err).__name__}: {why}); refusing to resume, file kept"
        ) from None


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that is unreadable or damaged (as opposed to one of another configuration)."""


_HELD: dict[Path, Any] = {}  # run directories this process has locked (a second lock_run_dir returns the same)


class RunLockedError(RuntimeError):
    """Another process is writing into the same run directory."""


class RunDirError(RuntimeError):
    """A run directory that cannot be used: it holds another run (and ``resume`` is not set), it is not a
    directory, or it cannot be written (read-only, permissions, full disk). Reported as one line, exit 2."""


def os_error_line(err: OSError, what: str = "the run directory") -> str:
    """One line for an OSError met while writing a run: the file, the reason, and what to do."""
    where = err.filename or what
    if err.errno == errno.ENOSPC:
        return f"disk full writing {where}; free space, then resume=true"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where} ({err.strerror}); choose a writable hydra.run.dir"
    return f"cannot use {where} ({err.strerror or err}); choose another hydra.run.dir or fix that path"


def lock_run_dir(directory: str | Path, prog: str = "mtrl") -> Any:
    """Take an exclusive lock on ``<directory>/.lock`` for the life of the process (or until the returned file is
    closed); a second run in the same directory raises :class:`RunLockedError` before writing anything."""
    d = Path(directory)
    held = _HELD.get(d.resolve())
    if held is not None and not held.closed:
        return held
    if d.exists() and not d.is_dir():
        raise RunDirError(f"run directory {d} exists and is not a directory; choose another hydra.run.dir")
    try:
        d.mkdir(parents=True, exist_ok=True)
        f = open(d / ".lock", "a+")  # noqa: SIM115 - held open for the run's duration
    except OSError as err:
        raise RunDirError(os_error_line(err, str(d))) from None
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


# what makes a directory "hold a run": its results, not Hydra's .hydra/ or train.log (a run that died before
# writing any of these lost nothing a new run could destroy)
RESULT_FILES = ("eval.jsonl", "metrics.jsonl")  # RL, supervised
TB_DIR = "tb"


def _tb_events(d: Path) -> list[Path]:
    tb = d / TB_DIR
    return sorted(tb.rglob("events.out.tfevents.*")) if tb.is_dir() else []


def _nonempty(p: Path) -> bool:
    try:
        return p.is_file() and p.stat().st_size > 0
    except OSError:
        return False


def held_run(directory: str | Path) -> str | None:
    """Describe the run ``directory`` holds (``"fake/ls/seed 1, last step 600"``), or None if it holds none: no
    checkpoint, no non-empty ``eval.jsonl``/``metrics.jsonl``, no TensorBoard events."""
    import json

    d = Path(directory)
    if not d.is_dir():
        return None
    ckpts = list_checkpoints(d / "checkpoints")
    results = [d / f for f in RESULT_FILES if _nonempty(d / f) or (d / f).is_dir()]
    if not (ckpts or results or _tb_events(d)):
        return None
    what: dict[str, Any] = {}
    for f in results:  # the last readable record names the run (env/method/seed and its last step)
        try:
            lines = [ln for ln in f.read_text().splitlines() if ln.strip()]
            rec = json.loads(lines[-1])
        except (OSError, ValueError, IndexError):
            continue
        what = {"where": rec.get("protocol") or rec.get("benchmark"), "method": rec.get("method"),
                "seed": rec.get("seed"), "step": rec.get("step", rec.get("epoch")),
                "unit": "step" if "step" in rec else "epoch"}  # fmt: skip
    if not what.get("method"):
        what.update(_describe_config(d))
    if ckpts and what.get("unit", "step") == "step":
        what["step"] = max(int(what.get("step") or 0), checkpoint_step(ckpts[-1]) or 0)
    name = "/".join(str(what.get(k)) for k in ("where", "method") if what.get(k) is not None) or "a run"
    seed = f", seed {what['seed']}" if what.get("seed") is not None else ""
    step = f", last {what.get('unit', 'step')} {what['step']}" if what.get("step") is not None else ""
    return f"{name}{seed}{step}"


def _describe_config(d: Path) -> dict[str, Any]:
    """env/method/seed from the run's ``resolved_config.yaml`` (or Hydra's ``.hydra/config.yaml``)."""
    from omegaconf import OmegaConf

    for f in (d / "resolved_config.yaml", d / ".hydra" / "config.yaml"):
        try:
            c = OmegaConf.load(f)
        except Exception:  # noqa: BLE001 - a description is a courtesy: missing or unreadable is fine
            continue
        where = OmegaConf.select(c, "env.name") or OmegaConf.select(c, "benchmark.name")
        method = OmegaConf.select(c, "agent.aggregator") or OmegaConf.select(c, "aggregator")
        return {"where": where, "method": method, "seed": OmegaConf.select(c, "seed")}
    return {}


def refuse_reuse(directory: str | Path, resume: Any) -> None:
    """A fresh run (``resume`` not set) in a directory that holds a run would destroy it: raise
    :class:`RunDirError` naming that run (call with the directory locked, before anything is written). Also
    refuses, resume or not, an ``eval.jsonl``/``metrics.jsonl`` that is not a regular file (e.g. a directory)."""
    d = Path(directory)
    for f in RESULT_FILES:
        if (d / f).exists() and not (d / f).is_file():
            raise RunDirError(f"{d / f} exists and is not a regular file; move it out of the run directory")
    if resume not in (False, None, "false"):
        return
    held = held_run(directory)
    if held is not None:
        raise RunDirError(
            f"run directory {directory} already holds a run ({held}); refusing to start a fresh run there: "
            "continue it with resume=true, or choose another hydra.run.dir (hydra.sweep.dir in a sweep)"
        )


def claim_run_dir(directory: str | Path, resume: Any, prog: str = "mtrl") -> Any:
    """:func:`lock_run_dir`, then :func:`refuse_reuse`: the lock for a run that may write into ``directory``. A
    refusal releases the lock before it propagates, so the directory stays free (a one-process sweep, a notebook)."""
    lock = lock_run_dir(directory, prog)
    try:
        refuse_reuse(directory, resume)
    except BaseException:
        lock.close()
        raise
    return lock


def clear_lost_run(directory: str | Path) -> list[str]:
    """``resume=true`` found no checkpoint: the run starts fresh, so the evaluations and TensorBoard events of the
    lost run (it cannot be continued) are removed first, or they would mix with the new run's. Returns what was
    removed (empty if nothing). Call with the directory locked."""
    d = Path(directory)
    gone = []
    for f in RESULT_FILES:
        p = d / f
        if p.is_file():
            n = sum(1 for ln in p.read_text(errors="replace").splitlines() if ln.strip())
            p.unlink()
            if n:
                gone.append(f"{f} ({n} records)")
    events = _tb_events(d)
    for p in events:
        p.unlink()
    if events:
        gone.append(f"{TB_DIR}/ ({len(events)} event files)")
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
    path: str | Path,
    fingerprint: dict[str, Any] | None = None,
    skip: tuple[str, ...] = (),
    implied: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read and verify a checkpoint; compare its fingerprint with ``fingerprint`` (the current run's), except the
    keys in ``skip`` (those not known yet, e.g. sizes read from the built envs). ``implied``: the value a key stands
    for where a side does not hold it (settings added after checkpoints existed), compared and reported as such.

    Raises:
        CheckpointError: unreadable, corrupt (digest mismatch) or mismatched checkpoint. The file is not touched.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise CorruptCheckpointError(f"cannot read checkpoint {p}: {e.strerror or e}") from None
    header, sep, data = raw.partition(b"\n")
    m = _HEADER.match(header) if sep else None
    if m is None:
        msg = f"checkpoint {p} is not an mtrl checkpoint (bad header); refusing to resume, file kept"
        raise CorruptCheckpointError(msg)
    version = int(m.group(1))
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint {p} has format v{version}; this mtrl reads v{READABLE_VERSIONS[0]}-v{READABLE_VERSIONS[-1]} "
            f"(a checkpoint of {'a newer' if version > FORMAT_VERSION else 'an older'} mtrl); refusing to resume, "
            "file kept"
        )
    if hashlib.sha256(data).hexdigest().encode() != m.group(2):
        raise CorruptCheckpointError(f"checkpoint {p} is corrupt (checksum mismatch); refusing to resume, file kept")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error means the same thing here
        msg = f"checkpoint {p} cannot be loaded ({type(e).__name__}); refusing to resume, file kept"
        raise CorruptCheckpointError(msg) from None
    if not isinstance(payload, dict):
        raise CorruptCheckpointError(f"checkpoint {p} holds no mtrl payload; refusing to resume, file kept")
    payload["format"] = version  # v1 -> v2 migration: the same payload, without the evaluation records
    if fingerprint is not None:  # every key of either side (a key on one side only is a mismatch)
        implied = implied or {}
        theirs = {**implied, **payload.get("fingerprint", {})}
        ours = {**implied, **fingerprint}
        keys = list(ours) + [k for k in theirs if k not in ours]
        diff = [
            f"{k}: checkpoint {theirs.get(k)!r} vs run {ours.get(k)!r}"
            for k in keys
            if k not in skip and theirs.get(k) != ours.get(k)
        ]
        if diff:
            raise CheckpointError(
                f"checkpoint {p} does not match this run ({'; '.join(diff)}); refusing to resume, file kept"
            )
    return payload


def find_resume_checkpoint(
    resume: Any,
    ckpt_dir: str | Path,
    fingerprint: dict[str, Any] | None = None,
    skip: tuple[str, ...] = (),
    implied: dict[str, Any] | None = None,
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
            return p, load_checkpoint(p, fingerprint, skip, implied)
        except CorruptCheckpointError as err:
            if i + 1 == len(candidates):
                raise
            log.warning("%s; falling back to the older %s", err, candidates[i + 1].name)
    return None


def check_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any], name: str = "optimizer") -> None:
    """Refuse an optimiser state that does not fit ``opt``'s parameters (``ValueError``, one line), before
    ``opt.load_state_dict`` accepts it: torch checks only the number of parameters per group, so an Adam
    ``exp_avg`` of another shape would load and fail (or broadcast) later."""
    groups = state.get("param_groups", [])
    if len(groups) != len(opt.param_groups):
        raise ValueError(f"{name}: checkpoint has {len(groups)} parameter groups, run {len(opt.param_groups)}")
    saved = state.get("state", {})
    for i, (theirs, ours) in enumerate(zip(groups, opt.param_groups)):
        if len(theirs["params"]) != len(ours["params"]):
            raise ValueError(f"{name}: group {i} has {len(theirs['params'])} parameters in the checkpoint, "
                             f"{len(ours['params'])} in the run")  # fmt: skip
        for pid, param in zip(theirs["params"], ours["params"]):
            for key, value in saved.get(pid, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                    raise ValueError(f"{name}: state {key!r} of a parameter of shape {tuple(param.shape)} has shape "
                                     f"{tuple(value.shape)} in the checkpoint")  # fmt: skip
