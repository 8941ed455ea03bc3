"""The wheel ships every subpackage of mtrl and the Hydra configs (``configs/`` as ``mtrl.configs``)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_mtrl_subpackage_and_the_configs_are_listed_for_the_wheel() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mtrl").rglob("__init__.py")}
    assert on_disk - listed == set(), f"subpackages missing from pyproject's packages: {sorted(on_disk - listed)}"
    assert "mtrl.configs" in listed and cfg["package-dir"]["mtrl.configs"] == "configs"
    patterns = cfg["package-data"]["mtrl.configs"]
    shipped = {p for pat in patterns for p in (ROOT / "configs").glob(pat)}
    assert shipped == set((ROOT / "configs").rglob("*.yaml")), "a config file would be left out of the wheel"
