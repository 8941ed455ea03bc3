"""The IMGrad paper's analyses from runs: ``python scripts/analyze.py <sweep or run dirs ...> --out DIR``.

A thin wrapper of :mod:`mtrl.analyze` (same as ``python -m mtrl.analyze``); see ``docs/analysis.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtrl.analyze import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
