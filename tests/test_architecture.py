"""Issue 15 (structure): the forbidden imports of the architecture, checked on the source (also lazy imports
inside functions): aggregators know nothing of agents, envs or the supervised module; envs know nothing of agents
or aggregators; the supervised module knows nothing of agents, envs or the RL entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mtrl"
FORBIDDEN = {
    "aggregators": ("mtrl.agents", "mtrl.envs", "mtrl.supervised"),
    "envs": ("mtrl.agents", "mtrl.aggregators"),
    "supervised": ("mtrl.agents", "mtrl.envs", "mtrl.train"),
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _violations(package: str, root: Path = PKG) -> set[tuple[str, str]]:
    base = root / package
    files = [base.with_suffix(".py")] if not base.is_dir() else sorted(base.rglob("*.py"))
    found = set()
    for f in files:
        for mod in _imports(f):
            for bad in FORBIDDEN[package]:
                if mod == bad or mod.startswith(bad + "."):
                    found.add((str(f.relative_to(root)), bad))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_forbidden_imports(package):
    assert _violations(package) == set()


def test_the_check_sees_lazy_imports(tmp_path):
    """The checker itself: an import inside a function body counts (IGBv2 once imported mtrl.agents lazily)."""
    (tmp_path / "aggregators").mkdir()
    (tmp_path / "aggregators" / "_x.py").write_text("def f():\n    from mtrl.agents import MultiTaskSAC\n")
    assert _violations("aggregators", tmp_path) == {("aggregators/_x.py", "mtrl.agents")}


def test_importing_aggregators_and_supervised_loads_no_agents():
    """At run time too: a fresh interpreter importing the aggregators (IGBv2 built and stepped) and the supervised
    trainer never loads ``mtrl.agents``."""
    code = (
        "import sys, torch; import mtrl.aggregators as A; import mtrl.supervised\n"
        "agg = A.make_aggregator('igbv2', window=1, random_windows=2, update_after=0, update_every=4, batch_size=4,"
        " hidden_dim=4)\n"
        "for t in range(12):\n"
        "    L = torch.rand(3, dtype=torch.float64) + 1; agg(torch.randn(3, 5, dtype=torch.float64), losses=L);"
        " agg.step(L)\n"
        "assert agg._sac.n_updates > 0\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('mtrl.agents', 'mtrl.envs', 'mtrl.train')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent)
