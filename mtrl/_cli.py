"""The command-line plumbing shared by ``python -m mtrl.train`` and ``python -m mtrl.supervised.train``.

Both check a composed config before Hydra creates a run directory (so a mistake costs one line and exit 2, and
leaves nothing behind), let ``<prefix>aggregator_kwargs.<k>=<v>`` add keys to the open kwargs dict, and turn
config/checkpoint errors of the run into one line (exit 2) and Ctrl-C into exit 130.
"""

from __future__ import annotations

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


def rewrite_argv(argv: list[str], kwargs_key: str) -> list[str]:
    """``<kwargs_key>.<k>=<v>`` adds a key to an open dict: Hydra needs ``++`` for that."""
    return ["++" + a if a.startswith(kwargs_key + ".") else a for a in argv]


def precheck(prog: str, config_name: str, overrides: list[str], check: Callable[[DictConfig], None],
             errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Compose ``config_name`` with the user's overrides and ``check`` it; any problem exits with one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=user)
        check(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        lines = str(err).split("\n")
        fail(prog, " ".join(lines[:1] + [ln.strip() for ln in lines[1:3] if "Key" in ln]))
    except errors as err:
        fail(prog, str(err))


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

    sys.argv = [sys.argv[0], *rewrite_argv(sys.argv[1:], kwargs_key)]
    args = sys.argv[1:]
    if not any(a.startswith("-") for a in args):
        precheck(prog, config_name, args, check, errors)

    @hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            run(cfg, Path(HydraConfig.get().runtime.output_dir))
        except errors as err:
            fail(prog, str(err))
        except KeyboardInterrupt:
            sys.exit(130)

    _main()
