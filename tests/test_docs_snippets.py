"""The Python examples of README.md and docs/*.md run as doctests: every ```` ```pycon ```` block is a doctest
(its ``>>>`` lines executed, their printed output compared), every ```` ```python ```` block must at least run.

Each block starts from fresh globals (an example must import what it uses). Documentation that cannot run is a
defect: there is no opt-out.
"""

from __future__ import annotations

import doctest
import re

import pytest

from tests._doc_commands import ROOT, doc_files

FENCE = re.compile(r"^```(?P<lang>pycon|python)\n(?P<body>.*?)^```$", re.M | re.S)


def snippets() -> list[tuple[str, str, str]]:
    out = []
    for path in doc_files():
        text = path.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((f"{path.relative_to(ROOT).as_posix()}:{line}", m["lang"], m["body"]))
    return out


SNIPPETS = snippets()


def test_there_are_examples_in_the_readme_and_the_aggregators_page() -> None:
    where = {s[0].split(":")[0] for s in SNIPPETS}
    assert {"README.md", "docs/aggregators.md"} <= where


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s[0])
def test_docs_example_runs(snippet: tuple[str, str, str]) -> None:
    where, lang, body = snippet
    if lang == "python":
        exec(compile(body, where, "exec"), {"__name__": "__docs__"})  # noqa: S102 - the docs' own example
        return
    test = doctest.DocTestParser().get_doctest(body, {"__name__": "__docs__"}, where, where, 0)
    assert test.examples, f"{where}: a pycon block without >>> lines"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, f"{where}: doctest failed:\n" + "".join(report)
