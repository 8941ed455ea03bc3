"""A repository a newcomer can clone: no tracked file over 1 MB unless it is on a short, justified allow-list.

Results are kept as ``eval.jsonl``, CSV, Markdown and figures; checkpoints, raw trajectories and other run
by-products stay local (``.gitignore``). A big file that a test, a run or the package needs goes on ``ALLOWED``
with its reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 1_000_000  # bytes
ALLOWED = {
    # CARE's frozen RoBERTa-small task-description embeddings (768-d per task), shipped as package data so that
    # nothing is downloaded at run time (mtrl/agents/data/SOURCE.md)
    "mtrl/agents/data/roberta_small_metaworld-mt50.json",
}


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p]


def test_no_tracked_file_over_1_mb_outside_the_allow_list() -> None:
    big = sorted(p for p in _tracked() if (ROOT / p).is_file() and (ROOT / p).stat().st_size > LIMIT)
    offenders = [p for p in big if p not in ALLOWED]
    assert not offenders, (f"tracked files over {LIMIT} bytes not on the allow-list (keep results as jsonl/CSV/"
                           f"Markdown/figures; justify anything else in ALLOWED): {offenders}")  # fmt: skip


def test_the_allow_list_is_short_and_current() -> None:
    tracked = set(_tracked())
    assert len(ALLOWED) <= 5
    assert ALLOWED <= tracked, f"allow-listed but not tracked: {sorted(ALLOWED - tracked)}"
