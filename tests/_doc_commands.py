"""The shell commands of the docs: every ```` ```bash ```` block of README.md and docs/*.md, parsed into commands.

A block preceded (on the closest non-blank line above its fence) by ``<!-- not-run-in-ci: <reason> -->`` is exempt
from being run; its ``python -m mtrl...`` commands are still composed. Used by ``tests/test_docs_commands.py``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!--\s*not-run-in-ci:(?P<reason>.*?)-->\s*$")
APPS = {"mtrl.train": "train", "mtrl.supervised.train": "supervised", "mtrl.toy": "toy"}
#: commands a doc block may hold besides the apps and scripts: what each is checked for is said in the test
OTHER = {"pip", "python3", ".", "source", "mkdocs", "tensorboard", "ruff", "cd", "mkdir", "for", "done", "do"}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Command:
    """One command of a block: its words (``VAR=value`` prefixes split off into ``env``) and its kind."""

    words: list[str]
    env: dict[str, str]
    kind: str  # "train" | "supervised" | "toy" | "reproduce" | "script" | "pytest" | "other" | "unknown"
    text: str

    @property
    def overrides(self) -> list[str]:
        """The arguments after ``python -m <app>`` (apps only)."""
        return self.words[3:]

    @property
    def placeholder(self) -> bool:
        """A template to fill in (``<method>``, ``$R``, ``/path/to/...``): it cannot be composed as written. Hydra's
        own interpolations (``${hydra:job.num}``) are not placeholders: Hydra fills them in."""
        return bool(re.search(PLACEHOLDER, self.text))

    @property
    def script(self) -> Path | None:
        if self.kind != "script":
            return None
        return ROOT / (self.words[1] if self.words[0] in ("python", "python3") else self.words[0])


@dataclass
class Block:
    """A ```` ```bash ```` block: where it is, why it is not run in CI (None: it is run), its commands."""

    file: Path
    line: int
    text: str
    reason: str | None
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT).as_posix()}:{self.line}"


#: what marks a template: a shell variable, ``<...>``, ``/path/to/``, ``[...``; not ``${hydra:...}``
PLACEHOLDER = r"\$(?!\{hydra:)|<[^>]*>|/path/to/|\[\.\.\."


def _kind(words: list[str]) -> str:
    if len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m":
        if words[2] in APPS:
            return APPS[words[2]]
        if words[2] == "pytest":
            return "pytest"
        if words[2] == "mtrl.reproduce":
            return "reproduce"
        if words[2] == "venv":
            return "other"
    if len(words) >= 2 and words[0] in ("python", "python3") and words[1].endswith(".py"):
        return "script"
    if words and words[0].startswith("scripts/") and words[0].endswith(".sh"):
        return "script"
    if words and words[0] in OTHER:
        return "other"
    return "unknown"


def parse_commands(text: str) -> list[Command]:
    """Continuation lines joined, comments dropped, ``&&`` chains split, ``VAR=value`` prefixes taken off."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"\s&&\s|;\s", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                words = part.split()
            env = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                k, v = words.pop(0).split("=", 1)
                env[k] = v
            if not words:
                continue
            out.append(Command(words, env, _kind(words), part.split(" #")[0].strip()))
    return out


def blocks() -> list[Block]:
    found = []
    for path in doc_files():
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```bash":
                start = i
                j = i + 1
                while j < len(lines) and lines[j].strip() != "```":
                    j += 1
                k = start - 1
                while k >= 0 and not lines[k].strip():
                    k -= 1
                m = MARKER.match(lines[k].strip()) if k >= 0 else None
                text = "\n".join(lines[start + 1 : j])
                block = Block(path, start + 1, text, m["reason"].strip() if m else None)
                block.commands = parse_commands(text)
                found.append(block)
                i = j
            i += 1
    return found


if __name__ == "__main__":  # the inventory: every documented block and what runs it (python -m tests._doc_commands)
    from tests.test_docs_commands import RUN_BLOCKS, _fast

    run = {b.text for b in RUN_BLOCKS}
    print("| where | first command | run by |\n|---|---|---|")
    for b in blocks():
        first = b.commands[0].text if b.commands else b.text.splitlines()[0]
        first = first if len(first) <= 70 else first[:67] + "..."
        if b.reason is not None:
            how = f"not run in CI: {b.reason}"
        elif b.text not in run:
            how = "the same block elsewhere (run once)"
        elif _fast(b):
            how = "test_documented_block_runs_at_smoke_size (fast)"
        else:
            how = "test_documented_block_runs_at_smoke_size_on_the_real_envs (slow)"
        cell = first.replace("|", "\\|")
        print(f"| {b.id} | `{cell}` | {how} |")
