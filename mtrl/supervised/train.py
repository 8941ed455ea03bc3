"""Command line of the supervised benchmarks (Hydra; configs ``configs/supervised.yaml``, ``benchmark/``, ``data/``).

    python -m mtrl.supervised.train benchmark=nyuv2 aggregator=imgrad data.root=/path/to/nyuv2
    python -m mtrl.supervised.train benchmark=cityscapes aggregator=cagrad aggregator_kwargs.c=0.4 data.root=...
    python -m mtrl.supervised.train benchmark=celeba aggregator=nashmtl data.root=/path/to/celeba
    python -m mtrl.supervised.train benchmark=nyuv2 data=synthetic aggregator=imgrad     # no download needed

Mistakes (unknown aggregator or keyword, a data root without the expected layout, bad numbers, a corrupt or
mismatched checkpoint) end with one ``mtrl.supervised.train: error: ...`` line and exit status 2.
"""

from __future__ import annotations

from mtrl import _cli
from mtrl.checkpoint import CheckpointError, RunLockedError
from mtrl.supervised.trainer import ConfigError, check_config, train

PROG = "mtrl.supervised.train"


def main() -> None:
    """``python -m mtrl.supervised.train [overrides]``: one-line errors for bad configs, then Hydra runs ``train``."""
    errors = (ConfigError, CheckpointError, RunLockedError)
    _cli.main(PROG, "supervised", "aggregator_kwargs", check_config, train, errors)


if __name__ == "__main__":
    main()
