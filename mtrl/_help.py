"""``--help`` of each entry point: its own config groups, its presets with one line each, and its docs page.

Hydra's built-in help lists every group of the shared config directory for every app (the RL app would show the
supervised app's ``benchmark`` and ``data``). Here an app's groups are those named in its own primary config's
``defaults`` list (``configs/train.yaml``: ``env``, ``agent``, ``logger``, ``experiment``), each option with the one
line its file gives: a ``# help: <text>`` comment if the file has one, else the first sentence of its leading
comment block. ``scripts/gen_docs.py`` renders the same preset list into the docs, so the two cannot differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mtrl._paths import config_dir

#: groups whose options are presets (a whole run's settings), listed in their own section
PRESET_GROUPS = ("experiment",)
#: launchers are Hydra's group but each app can sweep: listed for the apps that can (see docs/sweeps.md)
LAUNCHER_GROUP = "hydra/launcher"
DOCS_SITE = "http://127.0.0.1:8000"  # `mkdocs serve`


@dataclass(frozen=True)
class App:
    """One entry point: its program name, primary config, one-line summary and docs page (``docs/<page>``)."""

    prog: str
    config_name: str
    summary: str
    page: str
    sweeps: bool = True


APPS = {
    "mtrl.train": App("mtrl.train", "train", "multi-task SAC on Meta-World with a gradient aggregator", "sac.md"),
    "mtrl.supervised.train": App("mtrl.supervised.train", "supervised",
                                 "supervised multi-task learning (NYUv2, CityScapes, CelebA), same aggregators",
                                 "supervised.md"),  # fmt: skip
    "mtrl.toy": App("mtrl.toy", "toy", "the two-task synthetic benchmark of the IMGrad paper (Fig. 2)",
                    "benchmarks.md", sweeps=False),  # fmt: skip
}


def describe(path: Path, width: int = 100) -> str:
    """The one-line description of a config file: its ``# help:`` line, else the first sentence of its leading
    comments (``# @package`` lines skipped), cut at ``width`` characters on a word boundary."""
    lines = []
    for raw in Path(path).read_text().splitlines():
        s = raw.strip()
        if not s.startswith("#"):
            break
        text = s.lstrip("#").strip()
        if text.lower().startswith("help:"):
            return _cut(text[5:].strip(), width)
        if text and not text.startswith("@package"):
            lines.append(text)
    return _cut(_first_sentence(" ".join(lines)), width)


def _first_sentence(text: str) -> str:
    """Up to the first ``.``, ``;`` or ``:`` followed by a space outside parentheses (``e.g.``/``i.e.`` kept)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch in ".;:" and text[i + 1 : i + 2] == " " and not re.search(r"\b(e\.g|i\.e)$", text[:i]):
            return text[:i]
    return text.rstrip(".")


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1].rsplit(" ", 1)[0] + "…"


def _defaults(config_name: str) -> list[tuple[str, str | None]]:
    """``(group, default option)`` of the primary config's ``defaults`` list (``_self_`` and Hydra's own skipped)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(config_dir()) / f"{config_name}.yaml")
    out = []
    for entry in cfg.get("defaults", []) or []:
        if not isinstance(entry, dict) and not OmegaConf.is_dict(entry):
            continue
        for key, value in dict(entry).items():
            key = str(key)
            if key.startswith("override ") or key.startswith("hydra/") or key.startswith("/hydra"):
                continue
            out.append((key.lstrip("/"), None if value is None else str(value)))
    return out


def options(group: str) -> dict[str, str]:
    """``{option: description}`` of a config group (the ``.yaml`` files directly in ``configs/<group>/``)."""
    folder = Path(config_dir()) / group
    return {p.stem: describe(p) for p in sorted(folder.glob("*.yaml"))}


def groups(config_name: str) -> dict[str, tuple[str | None, dict[str, str]]]:
    """``{group: (default, {option: description})}`` of an app, in its defaults order, each group under its
    command-line name (``experiment`` for the supervised app's ``supervised_experiment``, ``_cli.GROUP_ALIASES``)."""
    from mtrl._cli import GROUP_ALIASES

    cli_name = {folder: alias for alias, folder in GROUP_ALIASES.get(config_name, {}).items()}
    return {cli_name.get(g, g): (default, options(g)) for g, default in _defaults(config_name)}


def presets(config_name: str) -> dict[str, str]:
    """The app's presets: the options of its preset groups (``experiment=``), with their descriptions."""
    out: dict[str, str] = {}
    for g, (_, opts) in groups(config_name).items():
        if g.split("/")[-1] in PRESET_GROUPS:
            out.update(opts)
    return out


def app_help(prog: str) -> str:
    """The ``--help`` text of ``python -m <prog>``."""
    app = APPS[prog]
    out = [f"{prog}: {app.summary}", "",
           f"Usage: python -m {prog} [group=option ...] [key=value ...]"]  # fmt: skip
    if app.sweeps:
        out.append(f"       python -m {prog} -m [overrides with comma-separated values ...]   (a sweep)")
    all_groups = groups(app.config_name)
    plain = {g: v for g, v in all_groups.items() if g.split("/")[-1] not in PRESET_GROUPS}
    if plain:
        out += ["", "Config groups (the default first):"]
        for g, (default, opts) in plain.items():
            names = sorted(opts, key=lambda o: (o != default, o))
            out.append(f"  {g}: {', '.join(names)}")
            out += [f"      {o:<14} {desc}".rstrip() for o, desc in ((o, opts[o]) for o in names)]
    pre = presets(app.config_name)
    if pre:
        key = next(g for g in all_groups if g.split("/")[-1] in PRESET_GROUPS)
        out += ["", f"Presets ({key}=<name>; a whole run's settings, any key can still be overridden):"]
        out += [f"  {name:<16} {desc}".rstrip() for name, desc in pre.items()]
    if prog == "mtrl.toy":
        from mtrl.toy import PRESETS

        out += ["", "Presets (preset=<name>; task weights of the two losses):"]
        out += [f"  {name:<16} weights {w}" for name, w in PRESETS.items()]
        out += ["", "Without preset= nothing runs: it prints what a preset would run (exit 2).",
                "Methods: methods=[ls,pcgrad,...] (any registered aggregator); kwargs: <method>.<kwarg>=..."]
    if app.sweeps:
        out += ["", f"Launchers ({LAUNCHER_GROUP}=<name>, with -m): {', '.join(options(LAUNCHER_GROUP))}"]
    page = app.page.removesuffix(".md")
    out += ["", f"Every key with its value: python -m {prog} --cfg job",
            f"Docs: docs/{app.page} (built site: `mkdocs serve`, then {DOCS_SITE}/{page}/)",
            "Hydra's own flags: --hydra-help"]  # fmt: skip
    return "\n".join(out)


def wants_help(argv: list[str]) -> bool:
    """``--help``/``-h`` among the arguments (Hydra's ``--hydra-help`` is left to Hydra)."""
    return any(a in ("--help", "-h") for a in argv)
