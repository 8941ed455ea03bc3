"""MkDocs hook: the figures of ``benchmarks/results/`` become part of the site at the same relative path.

The docs pages then show the very files the benchmarks wrote (``![...](benchmarks/results/toy/toy_imgrad_fig2.png)``
from a top-level page), and a figure that is moved or deleted breaks ``mkdocs build --strict`` instead of rotting.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
KINDS = (".png",)


def on_files(files: Files, config) -> Files:  # noqa: ANN001 - MkDocs' hook signature
    for path in sorted((ROOT / "benchmarks" / "results").rglob("*")):
        if path.suffix in KINDS and path.is_file():
            rel = path.relative_to(ROOT).as_posix()
            files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
