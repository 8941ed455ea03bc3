"""Where the Hydra configs live: ``configs/`` at the repository top level, shipped in the wheel as ``mtrl/configs``."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    """Absolute path of the Hydra config directory (source checkout first, then the installed package)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "configs", here / "configs"):
        if cand.is_dir():
            return str(cand)
    raise FileNotFoundError("mtrl: cannot find the Hydra configs (expected configs/ beside the mtrl package)")
