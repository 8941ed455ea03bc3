"""Every shell command in README.md and docs/*.md is executed here at smoke size, or its block says why not.

- Each ```` ```bash ```` block is run, or carries ``<!-- not-run-in-ci: <reason> -->`` on the line above its fence
  (a reason is required). A block that is run may hold only the apps (``python -m mtrl.train``,
  ``mtrl.supervised.train``, ``mtrl.toy``) and scripts; no placeholders.
- Every ``python -m mtrl...`` command, run or not, is composed with Hydra as written (a sweep: every job): an
  unknown key, ``experiment=``/``env=``/``benchmark=``/``data=``/``hydra/launcher=`` option, ``agent.arch``, aggregator
  or toy preset fails, through the app's own config check. Placeholders (``<method>``, ``$R``, ``/path/to``) are
  allowed only in free-form values (``data.root``, ``out_dir``, ``hydra.*``), which are left out of the composition.
- Every script named exists and answers ``--help`` (shell scripts: ``bash -n``).
- The blocks that are run: the same flags plus smoke overrides (tiny networks, few steps; a key the command sets
  itself keeps its value, except the budget keys capped in ``CAPS``; a sweep's ``range(1,11)`` becomes
  ``range(1,3)``), in a temporary directory, commands of a block in order (a report reads the sweep above it).
  Fake-env RL, synthetic-data supervised and toy blocks run in the default test run; blocks on the real
  Meta-World envs are slow tests (CI's second step).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._doc_commands import PLACEHOLDER, ROOT, Block, Command, blocks, parse_commands

BLOCKS = blocks()
APP_COMMANDS = [(b, i, c) for b in BLOCKS for i, c in enumerate(b.commands) if c.kind in ("train", "supervised", "toy")]
MODULES = {"train": "mtrl.train", "supervised": "mtrl.supervised.train", "toy": "mtrl.toy"}
FREE_KEYS = ("data.root", "out_dir", "hydra.")  # free-form values: a placeholder there is left out of the check

SMOKE = {
    "train": {"train.steps_per_task": 60, "train.warmup_steps_per_task": 20, "train.warmup_updates": 1,
              "train.eval_every": 60, "train.log_every": 20, "train.checkpoint_every": 60, "env.eval_episodes": 1,
              "agent.hidden_dim": 16, "agent.num_layers": 1, "agent.batch_size_per_task": 8, "agent.batch_size": "null",
              "agent.buffer_capacity": 2000, "train.torch_threads": 1, "train.progress": "false"},
    "supervised": {"model.width": 0.125, "benchmark.synthetic.n_train": 8, "benchmark.synthetic.n_val": 4,
                   "benchmark.synthetic.height": 32, "benchmark.synthetic.width": 64, "optim.batch_size": 2,
                   "epochs": 1, "train.max_batches_per_epoch": 2, "train.torch_threads": 1, "train.progress": "false"},
    "toy": {"steps": 50, "n_jobs": 1, "record_every": 5},
}  # fmt: skip
#: budget keys a documented command may set: run with at most this value
CAPS = {"train": {"train.steps_per_task": 120, "train.warmup_updates": 1}, "toy": {"steps": 50},
        "supervised": {"epochs": 1}}  # fmt: skip


# ------------------------------------------------------------------------------------------------ composition
def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def compose_jobs(cmd: Command) -> list:
    """Compose the command's config as the app would (a ``-m`` sweep: every job); raises on any mistake."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mtrl._cli import GROUP_ALIASES, rewrite_argv
    from mtrl._paths import config_dir

    kwargs_key = {"train": "agent.aggregator_kwargs", "supervised": "aggregator_kwargs", "toy": "_none_"}[cmd.kind]
    args = rewrite_argv([a for a in cmd.overrides if not a.startswith("-")], kwargs_key, GROUP_ALIASES.get(cmd.kind))
    args = ["device=cpu" if a.startswith("device=cuda") else a for a in args]  # the machine's, not the docs' fault
    for a in args:
        if _key(a) == "hydra/launcher":
            option = a.split("=", 1)[1]
            assert (Path(config_dir()) / "hydra" / "launcher" / f"{option}.yaml").exists(), f"no launcher {option!r}"
    user = [a for a in args if not _key(a).startswith("hydra")]
    if "-m" in cmd.overrides or "--multirun" in cmd.overrides:
        parsed = OverridesParser.create().parse_overrides(user)
        jobs = [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    else:
        jobs = [user]
    cfgs = []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for job in jobs:
            cfgs.append(compose(config_name=cmd.kind, overrides=job))
            if cmd.kind == "supervised" and not cfgs[-1].data.get("synthetic", False):
                # the config minus the data (a real root is not here): check it on synthetic data of that layout
                cfgs[-1] = compose(config_name=cmd.kind, overrides=[*job, "data=synthetic"])
    return cfgs


def check(cmd: Command) -> list:
    """Compose and run the app's own config check on every job."""
    cfgs = compose_jobs(cmd)
    for cfg in cfgs:
        if cmd.kind == "train":
            from mtrl.train import check_config

            check_config(cfg)
        elif cmd.kind == "supervised":
            from mtrl.supervised.trainer import check_config

            check_config(cfg)
        else:
            from mtrl.aggregators import make_aggregator
            from mtrl.toy import PRESETS, _method_kwargs

            assert cfg.preset is None or cfg.preset in PRESETS, f"unknown toy preset {cfg.preset!r}"
            for m in list(cfg.methods):
                make_aggregator(m, **_method_kwargs(cfg, m))
    return cfgs


def _composable(cmd: Command) -> Command | None:
    """The command with placeholder arguments of free-form keys left out; None if a placeholder is elsewhere."""
    kept = []
    for a in cmd.words:
        if re.search(PLACEHOLDER, a):
            if any(_key(a).startswith(k) for k in FREE_KEYS):
                continue
            return None
        kept.append(a)
    return Command(kept, cmd.env, cmd.kind, " ".join(kept))


# ------------------------------------------------------------------------------------------------ tests
def test_the_docs_have_commands_and_both_kinds_of_block() -> None:
    files = {b.file.name for b in BLOCKS}
    assert "README.md" in files and "sac.md" in files
    assert any(b.reason is None for b in BLOCKS) and any(b.reason is not None for b in BLOCKS)
    assert len(APP_COMMANDS) >= 20


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_every_block_is_run_or_says_why(block: Block) -> None:
    if block.reason is not None:
        assert len(block.reason) >= 10, f"{block.id}: not-run-in-ci needs a reason, got {block.reason!r}"
        return
    assert block.commands, f"{block.id}: an empty bash block"
    for cmd in block.commands:
        if cmd.kind == "reproduce":  # only its read-only views run here; a launching command is marked
            assert _read_only(cmd), f"{block.id}: `{cmd.text}` launches runs: mark the block <!-- not-run-in-ci -->"
            continue
        assert cmd.kind in ("train", "supervised", "toy", "script"), (
            f"{block.id}: `{cmd.text}` cannot be run by this test: mark the block <!-- not-run-in-ci: <reason> -->")
        assert not cmd.placeholder, f"{block.id}: `{cmd.text}` has a placeholder; a block that is run needs none"


@pytest.mark.parametrize("item", APP_COMMANDS, ids=lambda it: f"{it[0].id}#{it[1]}")
def test_documented_app_command_composes(item: tuple[Block, int, Command]) -> None:
    block, _, cmd = item
    composable = _composable(cmd)
    if composable is None:
        assert block.reason is not None, f"{block.id}: `{cmd.text}`: a placeholder outside a free-form value"
        pytest.skip(f"a template: {cmd.text}")
    try:
        check(composable)
    except Exception as err:  # noqa: BLE001 - any failure is the finding
        pytest.fail(f"{block.id}: `{cmd.text}` does not compose: {type(err).__name__}: {err}")


@pytest.mark.parametrize("bad", [
    "python -m mtrl.train agent.aggregator=imgard",
    "python -m mtrl.train agent.hiden_dim=3",
    "python -m mtrl.train experiment=cagrad_mt100",
    "python -m mtrl.train env=mt11",
    "python -m mtrl.train agent.arch=multihed",
    "python -m mtrl.supervised.train benchmark=nyu data=synthetic",
    "python -m mtrl.supervised.train data=synthetic aggregator=cagard",
    "python -m mtrl.toy preset=imgrad_fig3",
    "python -m mtrl.toy preset=cagrad methods=[ls,pcgard]",
    "python -m mtrl.train -m seed=1,2 agent.aggregator=imgrad,imgard",
    "python -m mtrl.train -m hydra/launcher=slurmm seed=1,2",
])  # fmt: skip
def test_the_check_catches_a_wrong_documented_command(bad: str) -> None:
    (cmd,) = parse_commands(bad)
    with pytest.raises(Exception):  # noqa: B017 - Hydra's, the app's ConfigError, ValueError, AssertionError
        check(cmd)


REPRODUCE_COMMANDS = [(b, c) for b in BLOCKS for c in b.commands if c.kind == "reproduce"]


def _read_only(cmd: Command) -> bool:
    return any(a in ("status=true", "dry_run=true") for a in cmd.words)


@pytest.mark.parametrize("item", REPRODUCE_COMMANDS, ids=lambda it: f"{it[0].id}:{it[1].text[:40]}")
def test_documented_reproduce_command_is_valid(item: tuple[Block, Command]) -> None:
    """Every ``python -m mtrl.reproduce`` command parses, and each row of its table composes with its budget and
    extra overrides (the command's own check before it launches anything); a read-only view (status, dry run)
    is also run, from the repository root, where the committed tables it may name live."""
    from mtrl import reproduce

    block, cmd = item
    args = [a for a in cmd.words[3:] if not re.search(r"\$|<[^>]*>", a)]
    reproduce.check_runs(reproduce.parse(args))
    if block.reason is None and _read_only(cmd):
        r = subprocess.run([sys.executable, "-m", "mtrl.reproduce", *cmd.words[3:]], cwd=ROOT, capture_output=True,
                           text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        assert r.returncode == 0, f"{block.id}: `{cmd.text}` exited {r.returncode}: {r.stderr[-2000:]}"


SCRIPTS = sorted({c.script for b in BLOCKS for c in b.commands if c.script is not None})


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_documented_script_exists_and_answers_help(script: Path) -> None:
    assert script.is_file(), f"documented script {script} does not exist"
    if script.suffix == ".sh":
        assert os.access(script, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(script)], check=True)
        return
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0 and "usage" in r.stdout.lower(), f"{script} --help: {r.stderr[-500:]}"


# ------------------------------------------------------------------------------------------------ runs
def _smoke_args(cmd: Command) -> list[str]:
    args = list(cmd.overrides)
    given = {_key(a) for a in args if "=" in a}
    smoke = {k: v for k, v in SMOKE[cmd.kind].items() if k not in given}
    if cmd.kind in ("train", "supervised"):  # only the keys this config has (CelebA has no image height, say)
        from omegaconf import OmegaConf

        cfg = compose_jobs(cmd)[0]
        smoke = {k: v for k, v in smoke.items() if OmegaConf.select(cfg, k, default="<absent>") != "<absent>"}
    out = [f"{k}={v}" for k, v in smoke.items()]
    for i, a in enumerate(args):
        cap = CAPS[cmd.kind].get(_key(a))
        if cap is not None and float(a.split("=", 1)[1]) > cap:
            args[i] = f"{_key(a)}={cap}"
        if a.startswith("seed=range("):
            args[i] = "seed=range(1,3)"
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags (-m) go before the overrides
    return flags + out + [a for a in args if not a.startswith("-")]


def _fast(block: Block) -> bool:
    """Cheap to run in the default test run: every app command on the fake env (``env=fake``), on synthetic data
    (``data=synthetic``), or the toy; anything else (the real Meta-World envs) is a slow test."""
    apps = [c for c in block.commands if c.kind in MODULES]
    need = {"train": "env=fake", "supervised": "data=synthetic", "toy": ""}
    return bool(apps) and all(not need[c.kind] or need[c.kind] in c.overrides or "--help" in c.overrides for c in apps)


RUN_BLOCKS = list({b.text: b for b in reversed(BLOCKS) if b.reason is None}.values())[::-1]  # the same block once


_RAN: set[str] = set()  # app commands already run by an earlier block (same text): run once per session


def run_block(block: Block, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON": sys.executable}
    independent = all(c.kind in MODULES for c in block.commands) and "resume=" not in block.text
    if not (cwd / "benchmarks").exists():  # commands that read the committed results (reports, analyses, status)
        (cwd / "benchmarks").symlink_to(ROOT / "benchmarks")
    for cmd in block.commands:
        if independent and cmd.text in _RAN:
            continue
        if cmd.kind == "reproduce":  # only its read-only views are in blocks that run
            argv = [sys.executable, "-m", "mtrl.reproduce", *cmd.words[3:]]
        elif cmd.kind in MODULES:
            argv = [sys.executable, "-m", MODULES[cmd.kind], *_smoke_args(cmd)]
        elif cmd.script is not None and cmd.script.suffix == ".py":
            argv = [sys.executable, str(cmd.script), *cmd.words[2:]]
        elif cmd.script is not None:
            argv = [str(cmd.script), *cmd.words[1:]]
        else:
            pytest.fail(f"{block.id}: cannot run `{cmd.text}`")
        r = subprocess.run(argv, cwd=cwd, env={**env, **cmd.env}, capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, f"{block.id}: `{' '.join(argv[1:])}` exited {r.returncode}:\n{r.stderr[-3000:]}"
        _RAN.add(cmd.text)


@pytest.mark.parametrize("block", [b for b in RUN_BLOCKS if _fast(b)], ids=lambda b: b.id)
def test_documented_block_runs_at_smoke_size(block: Block, tmp_path: Path) -> None:
    run_block(block, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in RUN_BLOCKS if not _fast(b)], ids=lambda b: b.id)
def test_documented_block_runs_at_smoke_size_on_the_real_envs(block: Block, tmp_path: Path) -> None:
    run_block(block, tmp_path)


def test_the_readme_test_command_is_ci_fast_step() -> None:
    """README's test command is the first line of `.ci/run`'s fast step (pip's -q aside)."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"Run the tests.*?```bash\n(.+?)\n```", readme, re.S)
    assert m, "README has no 'Run the tests' command"
    ci = (ROOT / ".ci" / "run").read_text().replace("pip install -q ", "pip install ")
    assert m.group(1).strip() in ci, f"README's test command is not .ci/run's fast step: {m.group(1)!r}"
