"""Command line of the supervised benchmarks (Hydra; configs ``configs/supervised.yaml``, ``benchmark/``, ``data/``).

    python -m mtrl.supervised.train benchmark=nyuv2 aggregator=imgrad data.root=/path/to/nyuv2
    python -m mtrl.supervised.train benchmark=cityscapes aggregator=cagrad aggregator_kwargs.c=0.4 data.root=...
    python -m mtrl.supervised.train benchmark=celeba aggregator=nashmtl data.root=/path/to/celeba
    python -m mtrl.supervised.train benchmark=nyuv2 data=synthetic aggregator=imgrad     # no download needed
    python -m mtrl.supervised.train experiment=nashmtl_nyuv2 data.root=/path/to/nyuv2    # a published row's settings

``experiment=<method>_<benchmark>`` (``configs/supervised_experiment/``; docs/reference-supervised.md) sets the
benchmark, the method and its hyper-parameters, the shared set, ``head_grads`` and ``grad_scale`` as the code
behind that published row had them.

Mistakes (unknown aggregator or keyword, a data root without the expected layout, bad numbers, a corrupt or
mismatched checkpoint) end with one ``mtrl.supervised.train: error: ...`` line and exit status 2; the checkpoint a
resume names is checked before Hydra writes anything (a refused resume leaves its run untouched).
"""

from __future__ import annotations

import sys

from mtrl import _cli
from mtrl.checkpoint import CheckpointError, RunDirError, RunLockedError
from mtrl.supervised.trainer import ConfigError, precheck, train

PROG = "mtrl.supervised.train"


def rewrite_argv(argv: list[str]) -> list[str]:
    """The overrides as this command line hands them to Hydra: ``aggregator_kwargs.<k>=<v>`` may add keys, and
    ``experiment=<preset>`` selects ``configs/supervised_experiment/<preset>.yaml`` (the RL presets of
    ``configs/experiment/`` are not the supervised app's). Use it to compose a command's config with Hydra's
    compose API: ``compose("supervised", overrides=rewrite_argv([...]))``."""
    return _cli.rewrite_argv(argv, "aggregator_kwargs", _cli.GROUP_ALIASES["supervised"])


def main() -> None:
    """``python -m mtrl.supervised.train [overrides]``: one-line errors for bad configs, then Hydra runs ``train``."""
    errors = (ConfigError, CheckpointError, RunLockedError, RunDirError)
    _cli.main(PROG, "supervised", "aggregator_kwargs", _precheck, train, errors)


def _precheck(cfg) -> None:
    """Config, then the checkpoint a resume names, then the run directory's lock: all before Hydra writes."""
    sweep = any(a in ("-m", "--multirun") for a in sys.argv[1:])  # sweep jobs may run in other processes
    precheck(cfg, _cli.explicit_run_dir(), lock=not sweep)


if __name__ == "__main__":
    main()
