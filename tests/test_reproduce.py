"""python -m mtrl.reproduce and the tables of mtrl/tables (SPEC §10): published numbers as in the paper, every row
composes, budgets, one-line errors, dry run, status, skip/resume on the fake env, and report.py --table verdicts."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtrl import reproduce
from mtrl._paths import config_dir
from mtrl.tables import TableError, available, load_table, resolve_budget, verdict

ROOT = Path(__file__).resolve().parents[1]
FAKE_TABLE = str(ROOT / "tests" / "data" / "fake_table.yaml")
PAPER = Path("/work/shared/papers/imgrad-paper.md")
# IMGrad paper, Table 4 (MT10 success ± SEM, 10 seeds); Tables 2-4 (Δm%, 3 seeds): SPEC §5 and §6
MT10 = {"ls": (0.49, 0.070), "stl_sac": (0.90, 0.032), "mtl_sac": (0.49, 0.073), "mh_sac": (0.54, 0.047),
        "sm": (0.73, 0.043), "care": (0.84, 0.051), "pcgrad": (0.72, 0.022), "cagrad": (0.83, 0.045),
        "nashmtl": (0.91, 0.031), "famo": (0.83, 0.050), "imgrad": (0.93, 0.068)}  # fmt: skip
DELTA_M = {"nyuv2": {"ls": 5.46, "pcgrad": 3.83, "cagrad": 0.29, "nashmtl": -4.04, "famo": -4.10, "imgrad": -4.57},
           "cityscapes": {"ls": 22.60, "pcgrad": 18.21, "cagrad": 11.58, "nashmtl": 6.82, "famo": 8.13,
                          "imgrad": 6.61},
           "celeba": {"ls": 4.15, "cagrad": 2.48, "nashmtl": 2.84, "famo": 1.21, "imgrad": 1.27}}  # fmt: skip


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mtrl.reproduce", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)  # fmt: skip


# ------------------------------------------------------------------------------------------------- the tables
def test_mt10_table_has_the_published_rows_numbers_and_sources() -> None:
    t = load_table("mt10")
    assert t.row_ids == list(MT10) and t.entry == "mtrl.train" and t.paper_length == 2_000_000
    for row in t.rows:
        assert (row.mean, row.sem, row.seeds) == (*MT10[row.id], 10), row.id
        assert row.source and row.overrides
    assert "no official" in t.row("nashmtl").source.lower()


@pytest.mark.skipif(not PAPER.is_file(), reason=f"the paper's text ({PAPER}) is not on this machine")
def test_mt10_table_matches_the_papers_table() -> None:
    """Each MT10 row's number as printed in the paper's Table 4 (first two columns of its lines)."""
    printed = {}
    for line in PAPER.read_text().splitlines():
        m = re.match(r"^([A-Za-z\- ]+)\t([0-9.]+) \$\\pm\$ ([0-9.]+)", line)
        if m:
            printed[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)))
    t = load_table("mt10")
    assert {r.label for r in t.rows} == set(printed)
    for row in t.rows:
        assert (row.mean, row.sem) == printed[row.label], row.id


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes", "celeba"])
def test_supervised_tables_have_the_published_delta_m(name: str) -> None:
    t = load_table(name)
    assert t.entry == "mtrl.supervised.train" and not t.metric["higher_is_better"]
    assert {r.id: r.mean for r in t.rows} == DELTA_M[name]
    assert all(r.seeds == 3 and r.sem is None for r in t.rows)


ALL_ROWS = [(name, r.id) for name in available() for r in load_table(name).rows]


@pytest.mark.parametrize("name, row", ALL_ROWS)
def test_every_row_composes_and_passes_its_entry_points_check(name: str, row: str) -> None:
    """Composed with the paper budget (and synthetic data for the supervised tables, whose ``experiment=`` presets
    are the supervised app's own)."""
    t = load_table(name)
    extra = ["data=synthetic"] if t.entry == "mtrl.supervised.train" else []
    args = reproduce.parse([f"table={name}", "out=unused", f"rows=[{row}]", *extra])
    reproduce.check_runs(args)  # raises TableError with the row's name on any problem


def test_mt10_rows_run_the_published_architectures_and_aggregators() -> None:
    from hydra import compose, initialize_config_dir

    expect = {"ls": ("shared", "ls"), "stl_sac": ("independent", "ls"), "mtl_sac": ("shared", "ls"),
              "mh_sac": ("multihead", "ls"), "sm": ("sm", "ls"), "care": ("care", "ls"),
              "pcgrad": ("shared", "pcgrad"), "cagrad": ("shared", "cagrad"), "nashmtl": ("shared", "nashmtl"),
              "famo": ("shared", "famo"), "imgrad": ("shared", "imgrad")}  # fmt: skip
    t = load_table("mt10")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for row in t.rows:
            cfg = compose("train", overrides=list(row.overrides))
            assert (cfg.agent.arch, cfg.agent.aggregator) == expect[row.id], row.id
            assert cfg.env.name == "mt10_legacy" and cfg.train.steps_per_task == 2_000_000, row.id
    assert dict(cfg.agent.aggregator_kwargs) == {}  # imgrad at its defaults


# ---------------------------------------------------------------------------------------------------- budgets
def test_budgets_scale_length_schedule_and_warmup() -> None:
    t = load_table("mt10")
    paper = resolve_budget(t, "paper")
    assert paper.fraction == 1.0 and paper.values["train.steps_per_task"] == 2_000_000
    tenth = resolve_budget(t, "0.1")
    assert tenth.values == {"train.steps_per_task": 200_000, "train.eval_every": 3000,
                            "train.warmup_steps_per_task": 150, "train.warmup_updates": 150,
                            "train.checkpoint_every": 10_000, "train.log_every": 100}  # fmt: skip
    assert resolve_budget(t, "200000").values == tenth.values
    assert resolve_budget(t, "2000000").name == "paper"
    tiny = resolve_budget(t, "100")  # nothing longer than the run itself
    assert tiny.values["train.steps_per_task"] == 100 and max(tiny.values.values()) == 100
    smoke = resolve_budget(t, "smoke")
    assert smoke.values["train.steps_per_task"] == 300 and smoke.values["train.warmup_updates"] < 1500


@pytest.mark.parametrize("bad", ["0", "-0.5", "abc", "3000000", "1500.5", "nan", "inf", ""])
def test_bad_budgets_are_refused(bad: str) -> None:
    with pytest.raises(TableError, match="budget"):
        resolve_budget(load_table("mt10"), bad)


# ---------------------------------------------------------------------------------------------- verdicts (unit)
@pytest.mark.parametrize("mean, sem, complete, expect", [
    (0.80, 0.05, True, "consistent"), (0.60, 0.01, True, "lower"), (0.99, 0.001, True, "higher"),
    (0.83, 0.045, False, "incomplete"), (float("nan"), float("nan"), True, "incomplete")])  # fmt: skip
def test_verdict(mean: float, sem: float, complete: bool, expect: str) -> None:
    assert verdict(0.83, 0.045, mean, sem, complete) == expect


def test_verdict_boundary_is_two_combined_sems() -> None:
    combined = (0.03**2 + 0.04**2) ** 0.5  # 0.05
    assert verdict(0.5, 0.03, 0.5 + 2 * combined - 1e-9, 0.04, True) == "consistent"
    assert verdict(0.5, 0.03, 0.5 + 2 * combined + 1e-9, 0.04, True) == "higher"
    assert verdict(5.0, None, 4.0, 0.4, True) == "lower"  # no published SEM: mtrl's alone


# ----------------------------------------------------------------------------------------- command-line errors
@pytest.mark.parametrize("args, match", [
    (["out=x"], "table= is required"),
    (["table=mt99", "out=x"], "unknown table 'mt99'; valid: celeba, cityscapes, mt10, nyuv2"),
    (["table=mt10"], "out= is required"),
    (["table=mt10", "out=x", "rows=[ls,sac]"], "unknown row 'sac' of table mt10; valid: ls, stl_sac"),
    (["table=mt10", "out=x", "launcher=pbs"], "unknown launcher 'pbs'; valid: local, slurm, ray"),
    (["table=mt10", "out=x", "budget=big"], "bad budget 'big'"),
    (["table=mt10", "out=x", "seeds=0"], "seeds must be an integer >= 1"),
    (["table=mt10", "out=x", "seed=3"], "seed is set per run"),
    (["table=mt10", "out=x", "dry_run=yes"], "dry_run must be true or false"),
    (["table=mt10", "out=x", "cagrad"], "expected key=value"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys, args: list[str], match: str) -> None:
    args = [a.replace("out=x", f"out={tmp_path / 'x'}") for a in args]
    with pytest.raises(SystemExit) as exc:
        reproduce.main(args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and match in err and "\n" not in err and err.startswith("mtrl.reproduce: error:")
    assert not (tmp_path / "x").exists()


def test_bad_training_override_names_the_row(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        reproduce.main([f"table={FAKE_TABLE}", f"out={tmp_path}", "agent.hiden_dim=3"])
    err = capsys.readouterr().err
    assert "row ls:" in err and "agent.hiden_dim" in err and "did you mean agent.hidden_dim" in err


def test_dry_run_lists_every_run_and_launches_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t"
    assert reproduce.main(["table=mt10", "seeds=2", "budget=smoke", f"out={out}", "rows=[cagrad,imgrad]",
                           "dry_run=true", "launcher=slurm", "launcher.partition=gpu"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "4 run(s) to launch" in text and "launcher slurm" in text
    for name in ("cagrad/seed_1", "cagrad/seed_2", "imgrad/seed_1", "imgrad/seed_2"):
        assert f"  {name} (not started): python -m mtrl.train experiment=" in text
    assert "train.steps_per_task=300" in text and f"hydra.run.dir={out / 'imgrad' / 'seed_2'} resume=true" in text
    assert not out.exists()


# --------------------------------------------------------------------------------- runs on the fake env (CLI)
def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "eval.jsonl").read_text().splitlines()]


def test_run_states_from_hand_made_directories(tmp_path: Path) -> None:
    from mtrl.checkpoint import lock_run_dir

    t = load_table(FAKE_TABLE)
    made = {"done": ([40, 80, 120], None, False), "short": ([40], None, False), "ckpt_only": ([], None, True),
            "failed": ([40], 2, True), "interrupted": ([40], 130, True), "running": ([40], None, True),
            "empty": ([], None, False)}  # fmt: skip
    for name, (steps, rc, ckpt) in made.items():
        d = tmp_path / name
        d.mkdir()
        if steps:
            _write_run(d / "x", [0.5] * len(steps), steps)
            (d / "x" / "eval.jsonl").rename(d / "eval.jsonl")
        if rc is not None:
            (d / "launch.jsonl").write_text(json.dumps({"engine": "local", "rc": 0}) + "\n"
                                            + json.dumps({"engine": "local", "rc": rc}) + "\n")  # fmt: skip
        if ckpt:
            (d / "checkpoints").mkdir()
            (d / "checkpoints" / "ckpt_00000040.pt").write_bytes(b"")
    lock = lock_run_dir(tmp_path / "running")
    try:
        got = {name: reproduce.run_state(t, tmp_path / name, 120) for name in made}
    finally:
        lock.close()
    assert got == {"done": ("done", 120), "short": ("resumable", 40), "ckpt_only": ("resumable", 0),
                   "failed": ("failed", 40), "interrupted": ("resumable", 40), "running": ("running", 40),
                   "empty": ("not started", 0)}  # fmt: skip
    assert reproduce.run_state(t, tmp_path / "running", 120)[0] == "resumable"  # lock released
    assert reproduce.run_state(t, tmp_path / "short", 40)[0] == "done"  # done at its own (smoke) budget


@pytest.mark.slow
def test_runs_skips_finished_and_reports_a_failed_run_without_stopping_the_others(tmp_path: Path) -> None:
    out = tmp_path / "t"
    bad = out / "cagrad" / "seed_1" / "checkpoints"  # a corrupt checkpoint: that run refuses to resume
    bad.mkdir(parents=True)
    (bad / "ckpt_00000020.pt").write_bytes(b"not a checkpoint")
    first = run_cli(f"table={FAKE_TABLE}", "seeds=2", "budget=smoke", f"out={out}", "launcher.n_jobs=2")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "FAILED cagrad/seed_1 (exit 2)" in first.stdout and "1 of 4 job(s) failed" in first.stderr
    for run in ("ls/seed_1", "ls/seed_2", "cagrad/seed_2"):
        assert _steps(out / run) == [20, 40], run
        budget = json.loads((out / run / "reproduce.json").read_text())["budget"]
        assert budget["name"] == "smoke" and budget["values"]["train.steps_per_task"] == 40
    assert json.loads((out / "reproduce.json").read_text())["budget"]["name"] == "smoke"
    status = run_cli(f"table={FAKE_TABLE}", "seeds=2", "budget=smoke", f"out={out}", "status=true")
    assert re.search(r"cagrad\s+failed 0/40\s+done", status.stdout), status.stdout
    assert "done 3, running 0, resumable 0, failed 1, not started 0" in status.stdout
    # a different budget in the same directory is refused, nothing launched
    other = run_cli(f"table={FAKE_TABLE}", "seeds=2", "budget=paper", f"out={out}")
    assert other.returncode == 2 and "was started with budget 'smoke', not 'paper'" in other.stderr
    # fixed (the bad file moved away): only the failed run is launched again
    (bad / "ckpt_00000020.pt").rename(tmp_path / "moved.pt")
    before = (out / "ls" / "seed_1" / "eval.jsonl").read_text()
    again = run_cli(f"table={FAKE_TABLE}", "seeds=2", "budget=smoke", f"out={out}")
    assert again.returncode == 0, again.stderr
    assert "1 run(s) to launch, 3 done" in again.stdout and "started cagrad/seed_1" in again.stdout
    assert (out / "ls" / "seed_1" / "eval.jsonl").read_text() == before
    assert _steps(out / "cagrad" / "seed_1") == [20, 40]


@pytest.mark.slow
def test_interrupted_table_resumes_without_duplicating_evaluations(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) while the runs train: each writes a checkpoint and stops; invoking again continues them
    from their checkpoints; every evaluation step is in eval.jsonl once."""
    out = tmp_path / "t"
    args = [f"table={FAKE_TABLE}", "seeds=1", "budget=paper", f"out={out}", "launcher.n_jobs=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "mtrl.reproduce", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    runs = [out / "ls" / "seed_1", out / "cagrad" / "seed_1"]
    deadline = time.time() + 240
    while time.time() < deadline and not all(list((r / "checkpoints").glob("*.pt")) for r in runs):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stdout + stderr
    status = run_cli(*args, "status=true").stdout
    assert "done 0, running 0, resumable 2" in status, status
    partial = {r: _steps(r) for r in runs}
    assert all(s and s[-1] < 120 for s in partial.values()), partial
    again = run_cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    for r in runs:
        assert _steps(r) == [40, 80, 120], r
        assert "resumed from" in (r / "train.log").read_text()
    assert run_cli(*args).stdout.count("0 run(s) to launch, 2 done") == 1


# ------------------------------------------------------------------------------------- report.py --table verdicts
def _report_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mtrl_report_script", ROOT / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write_run(run: Path, finals: list[float], steps: list[int], budget: str = "paper", length: int = 120) -> None:
    run.mkdir(parents=True)
    lines = [json.dumps({"step": s, "success_rate": v, "method": "x", "seed": 1, "protocol": "fake",
                         "tasks": {"t0": {"success_rate": v, "episode_return": 0.0},
                                   "t1": {"success_rate": v, "episode_return": 0.0}}})
             for s, v in zip(steps, finals)]  # fmt: skip
    (run / "eval.jsonl").write_text("\n".join(lines) + "\n")
    (run / "reproduce.json").write_text(json.dumps({"budget": {"name": budget, "values": {
        "train.steps_per_task": length}}}))  # fmt: skip


@pytest.mark.parametrize("case, expect", [("consistent", "consistent"), ("lower", "lower"), ("higher", "higher"),
                                          ("short", "incomplete"), ("few_seeds", "incomplete")])  # fmt: skip
def test_report_table_verdicts_from_hand_made_eval_files(tmp_path: Path, case: str, expect: str) -> None:
    """Fake table: ls published 0.5 ± 0.1 (2 seeds). Two seeds whose final (mean of the last 3 evaluations) is
    given; a short run stopped at its own smoke budget; one seed only."""
    pytest.importorskip("rliable", reason="the analysis extra (rliable) is needed for reports")
    finals = {"consistent": [0.55, 0.65], "lower": [0.1, 0.12], "higher": [0.95, 0.97], "short": [0.5, 0.5],
              "few_seeds": [0.5]}[case]  # fmt: skip
    for seed, v in enumerate(finals, 1):
        if case == "short":
            _write_run(tmp_path / "ls" / f"seed_{seed}", [v] * 2, [20, 40], budget="smoke", length=40)
        else:
            _write_run(tmp_path / "ls" / f"seed_{seed}", [0.0, v, v, v], [0, 40, 80, 120])
    (tmp_path / "reproduce.json").write_text(json.dumps({"budget": {"name": "smoke" if case == "short" else "paper",
                                                         "values": {"train.steps_per_task": 40 if case == "short"
                                                                    else 120}}}))  # fmt: skip
    assert _report_module().main([str(tmp_path), "--table", FAKE_TABLE, "--reps", "50"]) == 0

    rows = {r["row"]: r for r in csv.DictReader((tmp_path / "report" / "table.csv").open())}
    assert rows["ls"]["verdict"] == expect
    assert rows["ls"]["n_seeds"] == str(len(finals))
    assert abs(float(rows["ls"]["mean"]) - sum(finals) / len(finals)) < 1e-9
    if case == "consistent":  # 0.6 ± 12.71 * 0.05 (t, 1 degree of freedom), clipped to the range [0, 1]
        assert (float(rows["ls"]["ci_low"]), float(rows["ls"]["ci_high"])) == (0.0, 1.0)
    if case == "lower":  # 0.11 ± 12.71 * 0.01
        assert abs(float(rows["ls"]["ci_high"]) - (0.11 + 12.706205 * 0.01)) < 1e-5
    assert rows["cagrad"]["verdict"] == "incomplete" and rows["cagrad"]["n_seeds"] == "0"
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.startswith("# Fake-env table (tests): mtrl next to the paper")
    assert ("NOT the paper's budget" in md) == (case == "short")
    assert f"| {expect} |" in md and (tmp_path / "report" / "curves.png").exists()


def test_tables_are_package_data() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "mtrl.tables" in cfg["packages"]
    shipped = {p for pat in cfg["package-data"]["mtrl.tables"] for p in (ROOT / "mtrl" / "tables").glob(pat)}
    assert shipped == set((ROOT / "mtrl" / "tables").glob("*.yaml")) and len(shipped) == 4


def test_supervised_run_is_done_by_its_epochs_even_without_a_delta_m(tmp_path: Path) -> None:
    """CelebA's metrics.jsonl has delta_m: null (no single-task bases in mtrl): the run is done at its last
    epoch, and the comparison counts no seed for it rather than relaunching it."""
    from mtrl.tables import compare

    t = load_table("celeba")
    run = tmp_path / "ls" / "seed_1"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "delta_m": None}) + "\n" for e in (1, 2)))
    (run / "reproduce.json").write_text(json.dumps({"budget": {"name": "2", "values": {"epochs": 2}}}))
    assert reproduce.run_state(t, run, 2) == ("done", 2)
    assert reproduce.run_state(t, run, 15) == ("resumable", 2)
    ls = compare(tmp_path, t)[0]
    assert ls["row"] == "ls" and ls["n_seeds"] == 0 and ls["verdict"] == "incomplete"
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "delta_m": 2.0 * e}) + "\n" for e in (1, 2)))
    ls = compare(tmp_path, t, last_k=1)[0]
    assert ls["n_seeds"] == 1 and ls["mean"] == 4.0 and ls["reached"] == 2
