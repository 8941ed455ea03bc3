"""Mutation check of the SM / CARE tests (issue 24): each known wrong version must fail a test.

    python scripts/mutation_sm_care.py > benchmarks/results/mutation_sm_care.txt

For each mutation, a copy of the ``mtrl`` package with that one change (the source files here are never touched)
is put first on ``PYTHONPATH`` and the architecture tests run against it: ``tests/test_rl_golden.py`` (the
reference's outputs) and ``tests/test_rl_archs.py`` without its slow tests (which, before the golden tests, let
all four pass). A mutation is caught when pytest exits non-zero.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (name, file, original text, mutated text)
MUTATIONS = [
    ("CARE attention applied to the wrong experts (att.flip)", "mtrl/agents/archs/_care.py",
     'rep = torch.einsum("bk,kbd->bd", att, enc)', 'rep = torch.einsum("bk,kbd->bd", att.flip(-1), enc)'),
    ("CARE ignoring the attention (uniform mixture)", "mtrl/agents/archs/_care.py",
     'rep = torch.einsum("bk,kbd->bd", att, enc)',
     'rep = torch.einsum("bk,kbd->bd", torch.full_like(att, 1.0 / att.shape[-1]), enc)'),
    ("CARE context encoder without its ReLUs", "mtrl/agents/archs/_care.py",
     'z = mlp(shared, "te", 3, torch.relu(mlp(shared, "proj", 2, torch.relu(r))))',
     'z = mlp(shared, "te", 3, mlp(shared, "proj", 2, r))'),
    ("SM without the ReLU on the task embedding", "mtrl/agents/archs/_sm.py",
     'z = mlp(shared, "te", 3, torch.relu(task["emb"]))', 'z = mlp(shared, "te", 3, task["emb"])'),
]  # fmt: skip
TESTS = {"tests/test_rl_golden.py": [], "tests/test_rl_archs.py": ["-m", "not slow"]}


def main() -> int:
    missed = 0
    for name, rel, old, new in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "mtrl", Path(tmp) / "mtrl", ignore=shutil.ignore_patterns("__pycache__"))
            path = Path(tmp) / rel
            text = path.read_text()
            if text.count(old) != 1:
                print(f"mutation_sm_care.py: {rel} no longer holds {old!r} once", file=sys.stderr)
                return 2
            path.write_text(text.replace(old, new))
            print(f"## {name}\n{rel}: {old}  ->  {new}", flush=True)
            env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
            caught = False
            for test, extra in TESTS.items():
                cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test, *extra]
                res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
                lines = [x for x in res.stdout.splitlines() if x.startswith(("FAILED", "ERROR"))]
                summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-300:]
                print(f"  {test}: exit {res.returncode}: {summary}")
                for x in lines:
                    print(f"    {x[:160]}")
                caught |= res.returncode != 0
            print(f"  -> {'CAUGHT' if caught else 'MISSED'}\n", flush=True)
            missed += not caught
    print(f"{len(MUTATIONS) - missed} of {len(MUTATIONS)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
