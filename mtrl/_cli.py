"""The command-line plumbing shared by ``python -m mtrl.train`` and ``python -m mtrl.supervised.train``.

Both check a composed config before Hydra creates a run directory (so a mistake costs one line and exit 2, and
leaves nothing behind), let ``<prefix>aggregator_kwargs.<k>=<v>`` add keys to the open kwargs dict, and turn
config/checkpoint errors of the run into one line (exit 2) and Ctrl-C into exit 130.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig

from mtrl._paths import config_dir


def fail(prog: str, msg: str) -> NoReturn:
    """``<prog>: error: <msg>`` on stderr, exit status 2."""
    print(f"{prog}: error: {msg}", file=sys.stderr)
    sys.exit(2)


_RUN_DIR: dict[str, str | None] = {"explicit": None}


def explicit_run_dir() -> str | None:
    """The ``hydra.run.dir=`` given on the command line (None if Hydra picks the directory)."""
    return _RUN_DIR["explicit"]


def rewrite_argv(argv: list[str], kwargs_key: str) -> list[str]:
    """``<kwargs_key>.<k>=<v>`` adds a key to an open dict: Hydra needs ``++`` for that."""
    return ["++" + a if a.startswith(kwargs_key + ".") else a for a in argv]


def _value(argv: list[str], key: str) -> str | None:
    found = [a.split("=", 1)[1] for a in argv if a.lstrip("+").split("=", 1)[0] == key and "=" in a]
    return found[-1].strip("'\"") if found else None


def resume_into_run(argv: list[str]) -> list[str]:
    """``resume=<run dir or checkpoint>`` continues that run in its own directory: Hydra's run directory becomes
    it (no stray new run directory; ``train.log`` continues) and Hydra's ``.hydra/`` of the original is kept."""
    from mtrl.checkpoint import continued_run_dir

    resume = _value(argv, "resume")
    if resume is None or _value(argv, "hydra.run.dir") is not None:
        return argv
    run = continued_run_dir(resume)
    if run is None or "'" in str(run):
        return argv
    return [*argv, f"hydra.run.dir='{run}'", "hydra.output_subdir=null"]


def precheck(prog: str, config_name: str, overrides: list[str], check: Callable[[DictConfig], None],
             errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Compose ``config_name`` with the user's overrides and ``check`` it; any problem exits with one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    _RUN_DIR["explicit"] = _value(overrides, "hydra.run.dir")
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=user)
        check(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        fail(prog, _one_line(str(err), config_name, user))
    except errors as err:
        fail(prog, str(err))


class JobFailed(RuntimeError):
    """A sweep job that failed with a one-line error (Hydra records it as that job's failure)."""


def precheck_sweep(prog: str, config_name: str, overrides: list[str], check: Callable[[DictConfig], None],
                   errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Expand a ``-m`` sweep as Hydra's basic sweeper does and check every job; any bad job: one line each, exit 2,
    before any job starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        parsed = OverridesParser.create().parse_overrides(user)
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except (HydraException, OmegaConfBaseException, ImportError, AttributeError, TypeError):
        return  # a sweep syntax this check does not know: the jobs report their own errors
    bad = []
    for job in jobs:
        try:
            precheck(prog, config_name, list(job), check, errors)
        except SystemExit:
            bad.append(" ".join(job))
    if bad:
        fail(prog, f"{len(bad)} of {len(jobs)} sweep job(s) cannot run (see above): {'; '.join(bad)}; none started")


def _one_line(text: str, config_name: str, overrides: list[str]) -> str:
    """Hydra's error as one line, keeping its help: the available options of a group, the reason of a failed
    override and the closest valid key for a misspelt one."""
    import difflib
    import re

    lines = [ln.strip() for ln in text.split("\n")]
    msg = " ".join(lines[:1] + [ln for ln in lines[1:3] if "Key" in ln]).rstrip(".")
    if "Available options in" in text:
        i = next(i for i, ln in enumerate(lines) if ln.startswith("Available options in"))
        opts = []
        for ln in lines[i + 1 :]:
            if not ln or ln.startswith("Config search path"):
                break
            opts.append(ln)
        msg += f"; {lines[i].rstrip(':').lower()}: {', '.join(opts)}"
    m = re.match(r"Could not override '([^']+)'", lines[0])
    if m:
        key = m.group(1)
        try:
            from hydra import compose, initialize_config_dir
            from omegaconf import OmegaConf

            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                base = compose(config_name=config_name, overrides=[o for o in overrides if not o.startswith(key)])
            valid = _keys(OmegaConf.to_container(base, resolve=False))
        except Exception:  # noqa: BLE001 - the suggestion is a courtesy
            valid = []
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.75)
        msg += f": no such key{f'; did you mean {close[0]}?' if close else ''} (to add a new key: +{key}=...)"
    return msg


def _keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return []
    out = []
    for k, v in tree.items():
        out.append(prefix + str(k))
        out += _keys(v, f"{prefix}{k}.")
    return out


def main(
    prog: str,
    config_name: str,
    kwargs_key: str,
    check: Callable[[DictConfig], None],
    run: Callable[[DictConfig, Path], Any],
    errors: tuple[type[Exception], ...],
) -> None:
    """Rewrite ``sys.argv``, precheck (unless a Hydra flag such as ``-m``/``--cfg`` is given), then let Hydra
    call ``run(cfg, <Hydra's output dir>)``; ``errors`` raised by the run become one line and exit 2."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from mtrl import _help

    if _help.wants_help(sys.argv[1:]):  # the app's own groups and presets, not every group of the config dir
        print(_help.app_help(prog))
        sys.exit(0)
    sys.argv = [sys.argv[0], *rewrite_argv(sys.argv[1:], kwargs_key)]
    args = sys.argv[1:]
    flags = [a for a in args if a.startswith("-")]
    multirun = bool(flags) and all(f in ("-m", "--multirun") for f in flags)
    if not flags:
        sys.argv = [sys.argv[0], *resume_into_run(args)]
        precheck(prog, config_name, sys.argv[1:], check, errors)
    elif multirun:  # a sweep checks every job before starting any
        precheck_sweep(prog, config_name, [a for a in args if not a.startswith("-")], check, errors)

    @hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            run(cfg, Path(HydraConfig.get().runtime.output_dir))
        except errors as err:
            if multirun:  # one job's failure stays that job's: the sweep goes on
                print(f"{prog}: error: {err}", file=sys.stderr)
                raise JobFailed(str(err)) from None
            fail(prog, str(err))
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            fail(prog, f"disk full writing {err.filename or 'the run directory'}; free space, then resume=true")
        except KeyboardInterrupt:
            sys.exit(130)

    _main()
