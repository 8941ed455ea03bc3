"""Command line of the supervised benchmarks (Hydra; configs ``configs/supervised.yaml``, ``benchmark/``, ``data/``).

    python -m mtrl.supervised.train benchmark=nyuv2 aggregator=imgrad data.root=/path/to/nyuv2
    python -m mtrl.supervised.train benchmark=cityscapes aggregator=cagrad aggregator_kwargs.c=0.4 data.root=...
    python -m mtrl.supervised.train benchmark=celeba aggregator=nashmtl data.root=/path/to/celeba
    python -m mtrl.supervised.train benchmark=nyuv2 data=synthetic aggregator=imgrad     # no download needed

Mistakes (unknown aggregator or keyword, a data root without the expected layout, bad numbers, a corrupt or
mismatched checkpoint) end with one ``mtrl.supervised.train: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from mtrl._paths import config_dir
from mtrl.checkpoint import CheckpointError
from mtrl.supervised.trainer import ConfigError, check_config, train

PROG = "mtrl.supervised.train"
log = logging.getLogger(PROG)


def _error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(2)


def _rewrite_argv(argv: list[str]) -> list[str]:
    """``aggregator_kwargs.<k>=<v>`` adds a key to an open dict: Hydra needs ``++`` for that."""
    return ["++" + a if a.startswith("aggregator_kwargs.") else a for a in argv]


def _precheck(overrides: list[str]) -> None:
    """Compose and check the config before Hydra makes a run directory, so mistakes cost one line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name="supervised", overrides=user)
        check_config(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        _error(" ".join(str(err).split("\n")[:1] + [ln.strip() for ln in str(err).split("\n")[1:3] if "Key" in ln]))
    except ConfigError as err:
        _error(str(err))


def _hydra_entry() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=config_dir(), config_name="supervised", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            train(cfg, HydraConfig.get().runtime.output_dir)
        except (ConfigError, CheckpointError) as err:
            _error(str(err))
        except KeyboardInterrupt:
            sys.exit(130)

    _main()


def main() -> None:
    """``python -m mtrl.supervised.train [overrides]``: one-line errors for bad configs, then Hydra runs ``train``."""
    sys.argv = [sys.argv[0], *_rewrite_argv(sys.argv[1:])]
    args = sys.argv[1:]
    if not any(a.startswith("-") for a in args):
        _precheck(args)
    _hydra_entry()


if __name__ == "__main__":
    main()
