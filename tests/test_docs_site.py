"""The documentation site in a real browser (slow; CI's second step, after apt-installing Chromium).

Builds the site with ``mkdocs build --strict`` and runs ``scripts/check_site.py`` over it: headless Chromium
follows every internal link, checks every image and every ``#fragment``, and leaves screenshots of the front page
and the aggregators guide in ``.ci/artifacts/``. Skipped where Chromium or Playwright is missing (exit 3 of the
script), so machines without them still pass; CI installs both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_built_site_works_in_a_real_browser(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr[-3000:]}"
    out = ROOT / ".ci" / "artifacts"
    check = [sys.executable, str(ROOT / "scripts" / "check_site.py"), "--site", str(site), "--out", str(out)]
    r = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode == 3:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, f"the site has problems:\n{r.stderr[-3000:]}"
    assert (out / "front.png").stat().st_size > 10_000 and (out / "guide.png").stat().st_size > 10_000
