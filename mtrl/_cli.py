"""The command-line plumbing shared by ``python -m mtrl.train`` and ``python -m mtrl.supervised.train``.

Both check a composed config before Hydra creates a run directory (so a mistake costs one line and exit 2, and
leaves nothing behind), let ``<prefix>aggregator_kwargs.<k>=<v>`` add keys to the open kwargs dict, and turn
config/checkpoint errors of the run into one line (exit 2) and Ctrl-C into exit 130.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig

from mtrl._paths import config_dir


def fail(prog: str, msg: str) -> NoReturn:
    """``<prog>: error: <msg>`` on stderr, exit status 2."""
    print(f"{prog}: error: {msg}", file=sys.stderr)
    sys.exit(2)


_RUN_DIR: dict[str, str | None] = {"explicit": None}


class RunDirMismatch(ValueError):
    """``resume=<A> hydra.run.dir=<B>`` with A's run directory not B."""


def explicit_run_dir() -> str | None:
    """The ``hydra.run.dir=`` given on the command line (None if Hydra picks the directory)."""
    return _RUN_DIR["explicit"]


#: Command-line names of config groups whose directory has another name, per app (config name). The supervised
#: presets live in ``configs/supervised_experiment/`` so that the RL app's ``experiment`` group
#: (``configs/experiment/``) neither lists nor accepts them, and the supervised app's ``experiment=`` neither lists
#: nor accepts the RL presets; ``experiment=<preset>`` on the supervised command line selects that directory.
GROUP_ALIASES: dict[str, dict[str, str]] = {"supervised": {"experiment": "supervised_experiment"}}


def rewrite_argv(argv: list[str], kwargs_key: str, aliases: Mapping[str, str] | None = None) -> list[str]:
    """``<kwargs_key>.<k>=<v>`` adds a key to an open dict: Hydra needs ``++`` for that. ``aliases`` maps a group's
    command-line name to its directory (:data:`GROUP_ALIASES`): ``experiment=x`` -> ``supervised_experiment=x``
    (also with a ``+``/``++``/``~`` prefix)."""
    out = []
    for a in argv:
        if a.startswith(kwargs_key + "."):
            a = "++" + a
        elif aliases:
            body = a.lstrip("+~")
            key, sep, value = body.partition("=")
            if key in aliases:
                a = a[: len(a) - len(body)] + aliases[key] + sep + value
        out.append(a)
    return out


def _unalias(msg: str, aliases: Mapping[str, str] | None) -> str:
    """Hydra's messages name a group by its directory: give the command-line name back."""
    for name, directory in (aliases or {}).items():
        msg = msg.replace(directory, name)
    return msg


def _value(argv: list[str], key: str) -> str | None:
    found = [a.split("=", 1)[1] for a in argv if a.lstrip("+").split("=", 1)[0] == key and "=" in a]
    return found[-1].strip("'\"") if found else None


def resume_into_run(argv: list[str]) -> list[str]:
    """``resume=<run dir or checkpoint>`` continues that run in its own directory: Hydra's run directory becomes
    it (no stray new run directory; ``train.log`` continues) and Hydra's ``.hydra/`` of the original is kept."""
    from mtrl.checkpoint import continued_run_dir

    resume = _value(argv, "resume")
    if resume is None:
        return argv
    given = _value(argv, "hydra.run.dir")
    if given is not None:  # both: they must name the same directory (else data and logs would part ways)
        run = continued_run_dir(resume)
        if run is not None and Path(given).resolve() != run.resolve():
            raise RunDirMismatch(f"resume={resume} continues the run in {run}, but hydra.run.dir={given} names "
                                 "another directory; drop hydra.run.dir (the run continues in its own directory)")
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
        fail(prog, _unalias(_one_line(str(err), config_name, user), GROUP_ALIASES.get(config_name)))
    except errors as err:
        fail(prog, str(err))


def sweep_dirname_override(args: list[str], subdir_keys: tuple[str, ...]) -> list[str]:
    """``hydra.job.config.override_dirname.exclude_keys=[...]``: every key that is not swept (one value on the
    command line), the keys the subdir names already (``subdir_keys``) and Hydra's own, so that Hydra's
    ``override_dirname`` lists exactly the swept keys beyond those (``agent.lr=0.001``). Empty if the user set the
    exclude list, if ``subdir_keys`` is empty (a config whose subdir does not use it) or on a syntax it cannot
    parse (Hydra then reports it)."""
    if not subdir_keys or any(a.lstrip("+~").startswith("hydra.job.config.override_dirname") for a in args):
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    user = [a for a in args if not a.lstrip("+~").startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(user)
    except Exception:  # noqa: BLE001 - Hydra reports its own syntax errors
        return []
    keep = list(subdir_keys) + [o.key_or_group for o in parsed if not o.is_sweep_override()]
    keys = ",".join("'" + k.replace("'", "\\'") + "'" for k in dict.fromkeys(keep))
    return [f"hydra.job.config.override_dirname.exclude_keys=[{keys}]"]


def sweep_job_dir(config_name: str, job: list[str], hydra_args: list[str]) -> Path | None:
    """The directory a sweep job will write into, when the sweep directory is given on the command line (a
    timestamped default cannot hold an earlier run); None where it cannot be known before the job runs."""
    if _value(hydra_args, "hydra.sweep.dir") is None:
        return None
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=[*job, *hydra_args], return_hydra_config=True)
        sweep = OmegaConf.to_container(cfg.hydra.sweep, resolve=True)
    except Exception:  # noqa: BLE001 - e.g. a subdir naming ${hydra.job.num}: known only when the job runs
        return None
    return Path(str(sweep["dir"])) / str(sweep["subdir"])


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
    from mtrl.checkpoint import RunDirError, refuse_reuse

    hydra_args = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    bad, dirs = [], {}
    for job in jobs:
        try:
            precheck(prog, config_name, list(job), check, errors)
            d = sweep_job_dir(config_name, list(job), hydra_args)
            if d is not None:
                if d.resolve() in dirs:
                    fail(prog, f"sweep jobs {dirs[d.resolve()]!r} and {' '.join(job)!r} would share the directory {d}")
                dirs[d.resolve()] = " ".join(job)
                refuse_reuse(d, _value(list(job), "resume") or False)
        except RunDirError as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            bad.append(" ".join(job))
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
    bad_resume = next((o for o in overrides if o.startswith("resume=")), None)
    if bad_resume is not None and any(t in text for t in ("LexerNoViableAltException", "mismatched input",
                                                          "token recognition error", "Ambiguous value")):  # fmt: skip
        return (f"cannot parse {bad_resume!r}: quote a path with spaces, quotes, commas or brackets for Hydra "
                "inside the shell's quotes: \"resume='/path/my run'\", or with a ' in the path: "
                "\"resume=\\\"/path/it's\\\"\"")
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


# ---------------------------------------------------------------------------------------------------- value types
_INTERP = re.compile(r"\$\{")


def _leaf_types(tree: Any, prefix: str, out: dict[str, set[str]]) -> None:
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            _leaf_types(v, key + ".", out)
        elif isinstance(v, str) and _INTERP.search(v):
            out.setdefault(key, set()).add("str")  # an interpolation: its target is checked under its own key
        else:
            kind = ("none" if v is None else "bool" if isinstance(v, bool) else "int" if isinstance(v, int) else
                    "float" if isinstance(v, float) else "list" if isinstance(v, list) else
                    "dict" if isinstance(v, dict) else "str")  # fmt: skip
            out.setdefault(key, set()).add(kind)


@functools.lru_cache(maxsize=4)
def default_types(config_name: str) -> dict[str, frozenset[str]]:
    """The value types each key has in the shipped configs: ``<config_name>.yaml`` and every file of the groups
    its ``defaults`` list names (``# @package _global_`` files at the top level, others under the group's name).
    Read as plain YAML (no Hydra), so it works inside a running Hydra app too."""
    import yaml

    root = Path(config_dir())
    types: dict[str, set[str]] = {}
    main_cfg = yaml.safe_load((root / f"{config_name}.yaml").read_text()) or {}
    groups = [next(iter(d)) for d in main_cfg.get("defaults", []) if isinstance(d, dict)]
    files = [(root / f"{config_name}.yaml", "")]
    for g in groups:
        for f in sorted((root / g).glob("*.yaml")):
            files.append((f, "" if "@package _global_" in f.read_text().split("\n", 1)[0] else f"{g}."))
    for f, prefix in files:
        tree = yaml.safe_load(f.read_text()) or {}
        tree = {k: v for k, v in tree.items() if k not in ("defaults", "hydra")}
        _leaf_types(tree, prefix, types)
    return {k: frozenset(v) for k, v in types.items()}


def check_types(cfg: DictConfig, config_name: str, nullable: dict[str, str] | None = None,
                exempt: tuple[str, ...] = ()) -> str | None:  # fmt: skip
    """Every key of ``cfg`` whose shipped values are numbers, booleans or lists must hold one of those: returns
    the first mismatch as one sentence (None if all fit), so that ``agent.batch_size=abc`` is refused in one line
    instead of failing later in arithmetic. ``nullable``: keys whose shipped value is only ``null``, with the kind
    they take otherwise (``"int"`` or ``"float"``); ``exempt``: keys with their own, more specific check. String-
    valued keys are left to their own checks (their values are names, paths or ``auto``)."""
    from omegaconf import OmegaConf

    schema = default_types(config_name)
    tree = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    flat: dict[str, Any] = {}

    def walk(t: Any, prefix: str) -> None:
        for k, v in t.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(tree, "")
    for key, v in flat.items():
        kinds = set(schema.get(key, ()))
        if key in exempt or "aggregator_kwargs" in key or not kinds or "str" in kinds or "dict" in kinds:
            continue
        if kinds == {"none"}:
            if key not in (nullable or {}):
                continue
            kinds = {"none", nullable[key]}  # type: ignore[index]
        null = " or null" if "none" in kinds else ""
        if v is None:
            if "none" not in kinds:
                return f"{key} must not be null"
            continue
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if "float" in kinds:
            if not number:
                return f"{key} must be a number{null}, got {v!r}"
        elif "int" in kinds:
            if isinstance(v, float) and not isinstance(v, bool):
                return f"{key} must be a whole number{null}, got {v!r}"
            if not number:
                return f"{key} must be an integer{null}, got {v!r}"
        elif "bool" in kinds:
            if not isinstance(v, bool):
                return f"{key} must be true or false{null}, got {v!r}"
        elif "list" in kinds and not isinstance(v, list):
            return f"{key} must be a list{null}, got {v!r}"
    return None


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
    subdir_keys: tuple[str, ...] = (),
) -> None:
    """Rewrite ``sys.argv``, precheck (unless a Hydra flag such as ``-m``/``--cfg`` is given), then let Hydra
    call ``run(cfg, <Hydra's output dir>)``; ``errors`` raised by the run become one line and exit 2, and so does
    any OSError (a run directory that is a file, read-only, a full disk, ...).

    ``subdir_keys``: the keys a sweep's ``hydra.sweep.subdir`` names already (RL: env, method, seed); the subdir
    ends with Hydra's ``override_dirname``, which :func:`sweep_dirname_override` limits to the *swept* keys, so
    that every job of ``-m agent.lr=3e-4,1e-3`` gets its own directory (issue 21)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from mtrl import _help

    if _help.wants_help(sys.argv[1:]):  # the app's own groups and presets, not every group of the config dir
        print(_help.app_help(prog))
        sys.exit(0)
    sys.argv = [sys.argv[0], *rewrite_argv(sys.argv[1:], kwargs_key, GROUP_ALIASES.get(config_name))]
    args = sys.argv[1:]
    flags = [a for a in args if a.startswith("-")]
    multirun = bool(flags) and all(f in ("-m", "--multirun") for f in flags)
    if not flags:
        try:
            sys.argv = [sys.argv[0], *resume_into_run(args)]
        except RunDirMismatch as err:
            fail(prog, str(err))
        precheck(prog, config_name, sys.argv[1:], check, errors)
    elif multirun:  # a sweep checks every job before starting any
        extra = sweep_dirname_override([a for a in args if not a.startswith("-")], subdir_keys)
        sys.argv += extra
        precheck_sweep(prog, config_name, [a for a in sys.argv[1:] if not a.startswith("-")], check, errors)

    @hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            run(cfg, Path(HydraConfig.get().runtime.output_dir))
        except errors as err:
            if multirun:  # one job's failure stays that job's: the sweep goes on
                print(f"{prog}: error: {err}", file=sys.stderr)
                raise JobFailed(str(err)) from None
            fail(prog, str(err))
        except OSError as err:  # the run directory: a file, read-only, full disk, permissions, ...
            from mtrl.checkpoint import os_error_line

            if multirun:
                print(f"{prog}: error: {os_error_line(err)}", file=sys.stderr)
                raise JobFailed(os_error_line(err)) from None
            fail(prog, os_error_line(err))
        except KeyboardInterrupt:
            sys.exit(130)

    _main()
