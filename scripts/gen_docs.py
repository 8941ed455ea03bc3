"""Generate the docs parts that are read off the code, so that they cannot drift from it.

    python scripts/gen_docs.py           # rewrite them
    python scripts/gen_docs.py --check   # exit 1 listing what is stale (tests/test_docs_generated.py runs this)

- ``docs/sac.md``, block ``config-keys``: every key of ``configs/train.yaml``, ``configs/agent/sac.yaml`` and the env
  configs with its default(s) and the comment beside it in the YAML file;
- ``docs/sac.md``, block ``rl-presets``: the presets of ``python -m mtrl.train`` with the line ``--help`` prints
  (``mtrl/_help.py``);
- ``docs/troubleshooting.md``: every one-line error the apps print. Collected from the source with ``ast``: the
  messages of ``fail(prog, ...)``, ``sys.exit("mtrl....: error: ...")`` and of the exceptions the command lines turn
  into one line (``ConfigError``, ``CheckpointError``, ``CorruptCheckpointError``, ``RunLockedError``,
  ``DivergedError``, ``DataLayoutError``, and the ``ValueError``/``TypeError`` of the aggregator registry and the
  thread setting, which reach the user inside ``agent.aggregator: ...``). f-string fields are shown as ``<expr>``.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = ROOT / "configs"
DOCS = ROOT / "docs"
ENVS = ("mt10", "mt10_legacy", "mt50", "mt1", "fake")

# ---------------------------------------------------------------------------------------------------- config keys
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w]*):(?:\s+(?P<value>[^#]*?))?\s*(?:#\s?(?P<comment>.*))?$")


def yaml_keys(path: Path, skip: tuple[str, ...] = ("defaults", "hydra")) -> list[tuple[str, str, str]]:
    """``(dotted key, value, comment)`` of each leaf of a simple YAML config, comment lines that continue a key's
    comment (an indented ``#`` line right after it) joined to it."""
    out: list[list[str]] = []
    stack: list[tuple[int, str]] = []
    last: list[str] | None = None
    skipping: int | None = None
    for raw in path.read_text().splitlines():
        if not raw.strip():
            last = None
            continue
        if raw.lstrip().startswith("#"):
            if last is not None and raw.startswith(" "):
                last[2] = (last[2] + " " + raw.strip().lstrip("#").strip()).strip()
            continue
        if raw.lstrip().startswith("- "):
            continue
        m = _KEY.match(raw)
        if not m:
            continue
        indent = len(m["indent"])
        if skipping is not None:
            if indent > skipping:
                continue
            skipping = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m["key"]
        if indent == 0 and key in skip:
            skipping = 0
            continue
        value = (m["value"] or "").strip()
        if value == "":
            stack.append((indent, key))
            last = None
            continue
        dotted = ".".join([k for _, k in stack] + [key])
        last = [dotted, value, (m["comment"] or "").strip()]
        out.append(last)
    return [tuple(x) for x in out]  # type: ignore[misc]


#: what a key is, for the keys whose YAML line has no comment (the YAML comment wins where there is one)
FALLBACK = {
    "seed": "seed of everything (networks, envs, replay, aggregator); evaluation envs use seed + 10000",
    "agent.hidden_dim": "width of the hidden layers", "agent.num_layers": "hidden layers of actor and critics",
    "agent.lr": "Adam learning rate of actor and critics", "agent.alpha_lr": "Adam learning rate of the temperature",
    "agent.gamma": "discount", "agent.tau": "Polyak rate of the target critics, every update",
    "agent.init_alpha": "initial temperature α",
    "env.name": "the protocol (set by `env=`)", "env.max_episode_steps": "episode length (time-limit truncation)",
    "env.reward_version": "Meta-World reward function: v2 (v3 envs' own) or v1 (the published tables')",
    "env.fixed_goal": "one goal per task for the whole run (true) or resampled among the task's 50 on reset",
    "env.normalize_reward": "the reference's reward normalisation (`env.reward_alpha`)",
    "env.eval_episodes": "evaluation episodes per task (deterministic policy, success at any step)",
    "env.eval_every": "env steps per task between evaluations", "env.task": "the Meta-World v3 task of `mt1`",
    "env.num_tasks": "number of fake tasks",
}  # fmt: skip


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def config_keys_table() -> str:
    rows = ["| key | default | what |", "|---|---|---|"]
    for dotted, value, comment in yaml_keys(CONFIGS / "train.yaml"):
        rows.append(f"| `{dotted}` | `{_cell(value)}` | {_cell(comment or FALLBACK.get(dotted, ''))} |")
    for dotted, value, comment in yaml_keys(CONFIGS / "agent" / "sac.yaml"):
        key = f"agent.{dotted}"
        rows.append(f"| `{key}` | `{_cell(value)}` | {_cell(comment or FALLBACK.get(key, ''))} |")
    env = {name: {k: (v, c) for k, v, c in yaml_keys(CONFIGS / "env" / f"{name}.yaml")} for name in ENVS}
    keys: list[str] = []
    for name in ENVS:
        keys += [k for k in env[name] if k not in keys]
    rows += ["", "Env keys, per `env=` (— : the key does not apply to that env):", "",
             "| key | " + " | ".join(f"`{e}`" for e in ENVS) + " | what |",
             "|---|" + "---|" * len(ENVS) + "---|"]  # fmt: skip
    for k in keys:
        values = " | ".join(f"`{_cell(env[e][k][0])}`" if k in env[e] else "—" for e in ENVS)
        comment = next((env[e][k][1] for e in ENVS if k in env[e] and env[e][k][1]), FALLBACK.get(f"env.{k}", ""))
        rows.append(f"| `env.{k}` | {values} | {_cell(comment)} |")
    return "\n".join(rows)


def presets_list() -> str:
    from mtrl import _help

    return "\n".join(f"- `experiment={name}`: {desc}" for name, desc in _help.presets("train").items())


# ---------------------------------------------------------------------------------------------------- errors
ERROR_CLASSES = {
    "ConfigError": "The config cannot run. Nothing was built or written. Fix the key the line names (its valid "
                   "values are in the line, or on [multi-task SAC](sac.md#config-keys) / [supervised](supervised.md)).",
    "CheckpointError": "The checkpoint a resume names cannot continue this config (another env, sizes, method or "
                       "run), or cannot be read. It is left in place. Resume with the run's own config, or start a "
                       "new run directory ([checkpoints and resume](sac.md#checkpoints-and-resume)).",
    "CorruptCheckpointError": "The checkpoint file is truncated or not a checkpoint (a kill during a write on a "
                              "filesystem without atomic rename, a copy cut short). With `resume=true` the next "
                              "older intact one is used; name an older `ckpt_<step>.pt` to go back further.",
    "RunLockedError": "Another run holds this run directory's `.lock`. Wait for it, or give this run its own "
                      "`hydra.run.dir`; a lock left by a killed process on this machine is taken over.",
    "DivergedError": "Non-finite parameters, or `train.max_skipped_in_a_row` skipped updates in a row: the run "
                     "stopped (exit 2) without checkpointing NaN state. Lower the learning rate, try another "
                     "aggregator, or resume from the last checkpoint.",
    "DataLayoutError": "The data root does not have the layout the benchmark reads (nothing is downloaded). "
                       "See [supervised: data](supervised.md#data) for the expected files, or use `data=synthetic`.",
    "ValueError": "A bad aggregator name, keyword value or thread count (shown inside `agent.aggregator: ...` or "
                  "`aggregator: ...`). Use a name from [aggregators](aggregators.md) and a value the line allows.",
    "TypeError": "An aggregator keyword the method does not take. See the method's keywords in the "
                 "[API reference](api.md).",
    "fail": "Printed by the command line itself (`mtrl/_cli.py`, the entry points). The line says what to change.",
    "exit": "Printed by `python -m mtrl.toy` before any work. The line says what to change.",
}
ERROR_FILES = ("mtrl/**/*.py",)
VALUE_ERROR_FILES = ("mtrl/aggregators/*.py", "mtrl/_threads.py", "mtrl/toy.py")
VALUE_ERROR_SKIP = ("mtrl/aggregators/_autograd.py", "mtrl/aggregators/_weight_sac.py")  # internal misuse only


def _field(expr: str) -> str:
    """An f-string field as a reader wants it: ``', '.join(NAMES)`` -> ``NAMES``, ``str(x)`` -> ``x``."""
    for pattern in (r"^'[^']*'\.join\(map\(str, (.+)\)\)$", r"^'[^']*'\.join\((.+)\)$", r"^str\((.+)\)$"):
        m = re.match(pattern, expr)
        if m:
            expr = m.group(1)
    return expr


def _template(node: ast.AST) -> str | None:
    """The text of a message expression, f-string fields as ``<expr>``; None if it is not a string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                parts.append(f"<{_field(ast.unparse(v.value))}>")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        if left is not None and right is not None:
            return left + right
    return None


def collect_errors() -> list[tuple[str, str, str]]:
    """``(kind, message template, 'file:line')`` of every one-line error, in file order."""
    found: list[tuple[str, str, str]] = []
    files = sorted({p for pattern in ERROR_FILES for p in ROOT.glob(pattern)})
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name not in ERROR_CLASSES or not node.exc.args:
                    continue
                if name in ("ValueError", "TypeError") and (
                    rel in VALUE_ERROR_SKIP or not any(Path(rel).match(p) for p in VALUE_ERROR_FILES)
                ):
                    continue
                msg = _template(node.exc.args[0])
                if msg and not re.fullmatch(r"<[^<>]*>", msg):  # a bare field re-raises another message
                    found.append((name, msg, f"{rel}:{node.lineno}"))
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name == "fail" and len(node.args) == 2:
                    msg = _template(node.args[1])
                    if msg:
                        found.append(("fail", msg, f"{rel}:{node.lineno}"))
                elif name == "exit" and node.args:
                    msg = _template(node.args[0])
                    if msg and ": error: " in msg and not re.fullmatch(r"<[^<>]*>", msg.split(": error: ", 1)[1]):
                        found.append(("exit", msg.split(": error: ", 1)[1], f"{rel}:{node.lineno}"))
    found.sort(key=lambda t: (list(ERROR_CLASSES).index(t[0]), t[2].split(":")[0], int(t[2].split(":")[1])))
    return found


def troubleshooting_page() -> str:
    errors = collect_errors()
    out = [
        "# Troubleshooting",
        "",
        "<!-- GENERATED by `python scripts/gen_docs.py` from the source: do not edit by hand. -->",
        "",
        "A mistake costs one line on stderr and a non-zero exit, before anything is built or written:",
        "`<app>: error: <message>` with `<app>` one of `mtrl.train`, `mtrl.supervised.train`, `mtrl.toy` (exit 2;",
        "Ctrl-C: 130; SIGTERM: checkpoint, then 143). Below is every such message in the code, grouped by its cause,",
        "with `<...>` for the parts filled in at run time. `tests/test_docs_generated.py` fails when a message in the",
        "code is missing here.",
        "",
        "## Config keys and values Hydra rejects",
        "",
        "Composition errors come from Hydra and are shortened to one line by `mtrl/_cli.py`:",
        "",
        "| message | cause and fix |",
        "|---|---|",
        "| `Could not override '<key>': no such key; did you mean <close key>? (to add a new key: +<key>=...)` | "
        "a misspelt key. Use the suggested key; every key is on [multi-task SAC](sac.md#config-keys). |",
        "| `In 'train': Could not find '<group>/<option>'; available options in '<group>': ...` | "
        "an unknown `env=`, `experiment=`, `benchmark=`, ... option. Use one the line lists, or see `--help`. |",
        "| `<n> of <m> sweep job(s) cannot run (see above): ...; none started` | "
        "a `-m` sweep with bad jobs: each bad job's line is printed above it; nothing was started. |",
        "",
    ]
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for kind, msg, where in errors:
        by_kind.setdefault(kind, []).append((msg, where))
    titles = {"fail": "The command line", "exit": "`python -m mtrl.toy`"}
    for kind, items in by_kind.items():
        out += [f"## {titles.get(kind, '`' + kind + '`')}", "", ERROR_CLASSES[kind], "", "| message | where |",
                "|---|---|"]  # fmt: skip
        seen = set()
        for msg, where in items:
            one = " ".join(msg.split())
            if (one, where) in seen:
                continue
            seen.add((one, where))
            code = one.replace("`", "'").replace("|", "\\|")
            out.append(f"| `{code}` | `{where.split(':')[0]}` |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------- driver
def _replace_block(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    return text[:i] + "\n" + body + "\n" + text[j:]


def targets() -> dict[Path, str]:
    """Every generated file with the text it must have."""
    sac = (DOCS / "sac.md").read_text()
    sac = _replace_block(sac, "config-keys", config_keys_table())
    sac = _replace_block(sac, "rl-presets", presets_list())
    return {DOCS / "sac.md": sac, DOCS / "troubleshooting.md": troubleshooting_page()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if a generated part is stale")
    args = ap.parse_args(argv)
    stale = []
    for path, text in targets().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run: python scripts/gen_docs.py", file=sys.stderr)
        return 1
    print(("rewrote: " + ", ".join(stale)) if stale and not args.check else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
