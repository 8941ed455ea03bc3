"""Mutation check of the SM / CARE tests (issue 24): each known wrong version must fail a test.

    python scripts/mutation_sm_care.py [TEST ...] > benchmarks/results/mutation_sm_care.txt

For each mutation, a copy of the ``mtrl`` package with that one change (the source files here are never touched)
is put first on ``PYTHONPATH`` and the tests named on the command line run against it (default:
``tests/test_rl_golden.py``, the reference's outputs; issue 24 found that every fast test of
``tests/test_rl_archs.py`` passed all four). A mutation is caught when pytest exits non-zero.
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
DEFAULT_TESTS = ["tests/test_rl_golden.py"]


def main() -> int:
    tests = sys.argv[1:] or DEFAULT_TESTS
    missed = 0
    for name, rel, old, new in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            for d in ("mtrl", "configs"):  # the package and the Hydra configs it finds beside itself
                shutil.copytree(ROOT / d, Path(tmp) / d, ignore=shutil.ignore_patterns("__pycache__"))
            path = Path(tmp) / rel
            text = path.read_text()
            if text.count(old) != 1:
                print(f"mutation_sm_care.py: {rel} no longer holds {old!r} once", file=sys.stderr)
                return 2
            path.write_text(text.replace(old, new))
            print(f"## {name}\n{rel}: {old}  ->  {new}", flush=True)
            env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
            where = subprocess.run([sys.executable, "-P", "-c", "import mtrl; print(mtrl.__file__)"], cwd=ROOT, env=env,
                                   capture_output=True, text=True).stdout.strip()  # fmt: skip
            if not where.startswith(tmp):
                print(f"mutation_sm_care.py: the mutated copy is not the one imported ({where})", file=sys.stderr)
                return 2
            caught = False
            for test in tests:
                # -P and --import-mode=append: neither Python (the working directory) nor pytest (tests/ is a
                # package) may put this repository before the mutated copy on sys.path
                cmd = [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=append"]
                cmd.append(test)
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
