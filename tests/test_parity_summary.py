"""The parity harness's summary (benchmarks/peers/parity.py): each one-number row equals the value computed by hand
from the evaluations, per seed, in seed order (the numbers docs/parity.md reads off)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "benchmarks" / "peers" / "parity.py"
_spec = importlib.util.spec_from_file_location("parity", _PATH)
parity = importlib.util.module_from_spec(_spec)
sys.modules["parity"] = parity
_spec.loader.exec_module(parity)


def _row(text: str, label: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")[1:]]


def test_summary_rows_are_the_hand_computed_means_and_first_hits():
    curve = {5_000: 0.0, 10_000: 0.2, 15_000: 0.4, 20_000: 0.9, 25_000: 0.6, 30_000: 1.0, 35_000: 1.0}
    late = {st: (1.0 if st >= 30_000 else 0.0) for st in curve}
    data = {"sb3": {"t": {1: curve, 2: late}}, "mtrl": {"t": {1: late}}}
    text = parity.table(data)
    short = {st: v for st, v in curve.items() if st <= 25_000}  # second half of 25k: 12.5k on, 15k .. 25k
    assert _row(parity.table({"sb3": {"t": {1: short}}}), "second half")[0].startswith("0.63 ")
    ge10, ge20, last5, first = (_row(text, k) for k in ("mean ≥10k", "mean ≥20k", "last 5", "first ≥0.9"))
    # sb3 seed 1: mean of 0.2, 0.4, 0.9, 0.6, 1, 1 = 0.683; from 20k: 0.9, 0.6, 1, 1 = 0.875; last 5: 0.4 .. 1 = 0.78
    # sb3 seed 2: 2/6 = 0.333 from 10k, 2/4 = 0.5 from 20k, 2/5 = 0.4 over the last five
    assert ge10[0].endswith("(0.68, 0.33)") and ge10[0].startswith("0.51 ")
    assert ge20[0].endswith("(0.88, 0.50)") and ge20[0].startswith("0.69 ")
    assert last5[0].endswith("(0.78, 0.40)") and last5[0].startswith("0.59 ")
    assert first[0] == "25.0k (2 of 2: 20k, 30k)" and first[1] == "30.0k (1 of 1: 30k)"
    # the second half: from 35k / 2 = 17.5k on, 20k .. 35k: as from 20k here
    assert _row(text, "second half")[0] == ge20[0]
    assert ge10[1].startswith("0.33 ") and "{—}" in ge10[1]  # one seed: no t-interval
    # where learning starts: 0.5 first at 5k on one seed, 0.9 first at 10k; a seed that never reaches it is named
    early = {"sb3": {"t": {1: {5_000: 0.5, 10_000: 0.9}, 2: {5_000: 0.0, 10_000: 0.6}}}}
    text = parity.table(early)
    assert _row(text, "first ≥0.5")[0] == "7.5k (2 of 2: 5k, 10k)"
    assert _row(text, "first ≥0.9")[0] == "10.0k (1 of 2: 10k, —)"


def test_mtrl_label_pins_the_reference_sac_and_variants_replace_what_they_name(tmp_path):
    """``mtrl`` means facebookresearch/mtrl's SAC settings in every session, whatever mtrl's defaults; a variant's
    override replaces the pinned value of its key (one value per key on the command line) and keeps the other."""
    from tests.test_rl_train import cfg_of

    def agent(overrides):
        cmd = parity.mtrl_command("reach-v3", 1, 100, tmp_path, overrides)
        args = cmd[cmd.index("mtrl.train") + 1 :]
        keys = [a.partition("=")[0] for a in args]
        assert len(keys) == len(set(keys)), keys
        return cfg_of(*[a for a in args if not a.startswith("hydra.")]).agent

    clamp, log_alpha = "agent.log_std=clamp", "agent.alpha_loss=log_alpha"
    cases = (([], ("tanh", "alpha")), ([clamp], ("clamp", "alpha")), ([log_alpha], ("tanh", "log_alpha")),
             ([clamp, log_alpha], ("clamp", "log_alpha")))  # fmt: skip
    for overrides, expected in cases:
        a = agent(overrides)
        assert (a.log_std, a.alpha_loss, a.tanh_correction) == (*expected, "exact")  # the study's runs' tanh term
    assert agent([clamp, log_alpha, "agent.tanh_correction=capped"]).tanh_correction == "capped"


def test_paired_differences_are_seed_by_seed():
    a = {1: {10_000: 1.0, 20_000: 1.0}, 2: {10_000: 0.5, 20_000: 0.9}, 3: {10_000: 1.0, 20_000: 1.0}}
    b = {1: {10_000: 0.0, 20_000: 1.0}, 2: {10_000: 0.5, 20_000: 0.5}}  # seed 3 not run: left out
    text = parity.paired({"x": {"t": a}, "y": {"t": b}}, "x", "y")
    assert "### t (seeds 1, 2)" in text
    # mean ≥10k: seed 1 1.0 − 0.5 = +0.50, seed 2 0.70 − 0.50 = +0.20; first ≥0.9: 10k − 20k, 20k − never (left out)
    assert "| mean ≥10k | +0.35 {" in text and "| +0.50, +0.20 |" in text
    assert "| first ≥0.9 (steps) | -10.0k {—} | -10.0k |" in text
    # first ≥0.5: seed 1 10k − 20k, seed 2 10k − 10k
    assert "| first ≥0.5 (steps) | -5.0k {" in text and "| -10.0k, +0.0k |" in text


def _finished_run(root: Path, impl: str, seed: int, steps: int = 10_000) -> None:
    run = root / impl / "reach-v3" / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / "eval.jsonl").write_text(json.dumps({"step": steps, "success_rate": 1.0}) + "\n")


def test_goals_keeps_what_it_measured_and_evaluates_only_the_new_runs(tmp_path, monkeypatch):
    """An interrupted ``goals`` keeps the runs it measured; the next call measures only the runs not yet in
    goals.jsonl (a seed finished since, the one interrupted), and ``--redo`` measures them all again."""
    calls: list[tuple[str, int]] = []

    def fake(impl, task, seed, run, episodes):
        if (impl, seed) == ("sb3", 2) and not calls.count(("interrupt", 0)):
            calls.append(("interrupt", 0))
            raise KeyboardInterrupt  # the user stops the evaluation half-way
        calls.append((impl, seed))
        return {"impl": impl, "task": task, "seed": seed, "episodes": episodes, "train": 1.0, "unseen": 0.5}

    monkeypatch.setattr(parity, "goals_one", fake)
    for impl, seed in (("mtrl", 1), ("sb3", 1), ("sb3", 2)):
        _finished_run(tmp_path, impl, seed)
    args = ["goals", "--out", str(tmp_path), "--steps", "10000", "--episodes", "3"]
    with pytest.raises(KeyboardInterrupt):
        parity.main(args)
    recs = [json.loads(x) for x in (tmp_path / "goals.jsonl").read_text().splitlines()]
    assert [(r["impl"], r["seed"], r["steps"]) for r in recs] == [("mtrl", 1, 10_000), ("sb3", 1, 10_000)]
    _finished_run(tmp_path, "mtrl", 2)
    calls.clear()
    calls.append(("interrupt", 0))  # no interruption this time
    assert parity.main(args) == 0
    assert calls[1:] == [("mtrl", 2), ("sb3", 2)]  # mtrl 1 and sb3 1 were not evaluated again
    row = "| sb3 | reach-v3 | 1, 2 | 1.00 (1.00, 1.00) | 0.50 (0.50, 0.50) | +0.50 |"
    assert row in (tmp_path / "goals.md").read_text()
    assert parity.main([*args[:-1], "5"]) == 0  # another episode count is another measurement, kept beside
    assert len((tmp_path / "goals.jsonl").read_text().splitlines()) == 8
    calls.clear()
    calls.append(("interrupt", 0))
    assert parity.main([*args, "--redo"]) == 0
    assert sorted(calls[1:]) == [("mtrl", 1), ("mtrl", 2), ("sb3", 1), ("sb3", 2)]
    assert len((tmp_path / "goals.jsonl").read_text().splitlines()) == 8  # replaced, not appended twice


def test_an_unfinished_mtrl_run_resumes_from_its_checkpoint_and_sb3s_restarts(tmp_path, monkeypatch):
    """The harness continues an unfinished mtrl run (``resume=true``, its evaluations kept, its log appended to)
    once it has a checkpoint, and restarts one without (and SB3's, which keeps none) from zero."""
    calls: list[list[str]] = []

    def fake_call(cmd, cwd, env, stdout, stderr):
        calls.append(cmd)
        stdout.write("next attempt\n")
        return 0

    monkeypatch.setattr(parity.subprocess, "call", fake_call)
    for impl in ("mtrl", "sb3"):
        run = tmp_path / impl / "reach-v3" / "seed_1"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "ckpt_0000010000.pt").write_bytes(b"stands for a checkpoint")
        (run / "eval.jsonl").write_text(json.dumps({"step": 10_000, "success_rate": 0.5}) + "\n")
        (run / "stdout.log").write_text("first attempt\n")
        parity._one(impl, [], "reach-v3", 1, 30_000, tmp_path)
    mtrl_run, sb3_run = (tmp_path / i / "reach-v3" / "seed_1" for i in ("mtrl", "sb3"))
    assert calls[0][-1] == "resume=true" and "train.checkpoint_every=10000" in calls[0]
    assert (mtrl_run / "eval.jsonl").exists()
    assert (mtrl_run / "stdout.log").read_text() == "first attempt\nnext attempt\n"
    assert "resume=true" not in calls[1] and not (sb3_run / "eval.jsonl").exists()
    assert (sb3_run / "stdout.log").read_text() == "next attempt\n"
    for p in (mtrl_run / "checkpoints").iterdir():
        p.unlink()  # mtrl stopped before its first checkpoint: it restarts too
    parity._one("mtrl", [], "reach-v3", 1, 30_000, tmp_path)
    assert "resume=true" not in calls[2] and not (mtrl_run / "eval.jsonl").exists()


def test_snapshots_evaluates_each_saved_policy_once_and_reports_the_hand_computed_spread(tmp_path, monkeypatch):
    """``snapshots`` finds every policy a finished run saved (mtrl's ``ckpt_*.pt``, SB3's ``sb3_*.zip``) from
    ``--from`` on, evaluates each once (a second call measures nothing again), and its report rows equal the values
    computed by hand: per-seed mean over snapshots, SD between consecutive snapshots beside the binomial SD, final
    snapshot, and the paired differences."""
    import numpy as np

    success = {("mtrl", 1): [0.2, 1.0, 0.4], ("mtrl", 2): [0.6, 0.6, 0.6], ("sb3", 1): [0.5, 0.7, 0.9],
               ("sb3", 2): [0.0, 0.2, 0.4]}  # steps 10k, 20k, 30k  # fmt: skip
    for impl, seed in success:
        _finished_run(tmp_path, impl, seed, steps=30_000)
        ckpts = tmp_path / impl / "reach-v3" / f"seed_{seed}" / "checkpoints"
        ckpts.mkdir()
        for step in (0, 10_000, 20_000, 30_000):  # the one at 0 is before --from
            name = f"sb3_{step:010d}.zip" if impl == "sb3" else f"ckpt_{step:010d}.pt"
            (ckpts / name).write_text(str(step))
    calls = []
    monkeypatch.setattr(parity, "_policy", lambda impl, path: (impl, path))

    def fake_success(policy, task, seed, goal_sets, episodes):
        impl, path = policy
        step = int(path.read_text())
        calls.append((impl, seed, step))
        return {"train": success[(impl, seed)][step // 10_000 - 1]}

    monkeypatch.setattr(parity, "_success", fake_success)
    args = ["snapshots", "--out", str(tmp_path), "--steps", "30000", "--episodes", "10", "--from", "10000",
            "--paired", "mtrl", "sb3"]  # fmt: skip
    assert parity.main(args) == 0
    assert sorted(calls) == sorted((i, s, st) for i, s in success for st in (10_000, 20_000, 30_000))
    calls.clear()
    assert parity.main(args) == 0 and calls == []  # all measured already
    text = (tmp_path / "snapshots.md").read_text()
    assert _row(text, "20000") == ["0.45 (0.70, 0.20)", "0.80 (1.00, 0.60)"]  # sb3 first, then mtrl
    assert _row(text, "mean over snapshots")[1].startswith("0.57 [") and "(0.53, 0.60)" in _row(
        text, "mean over snapshots")[1]  # fmt: skip
    sd_m1 = np.sqrt((0.8**2 + 0.6**2) / 2 / 2)  # successive differences +0.8, −0.6; mtrl seed 2's is 0
    binom = np.mean([np.sqrt(np.mean(np.array(v) * (1 - np.array(v))) / 10) for k, v in success.items()
                     if k[0] == "mtrl"])  # fmt: skip
    assert _row(text, "SD between snapshots (binomial)")[1] == f"{sd_m1 / 2:.2f} ({binom:.2f}) ({sd_m1:.2f}, 0.00)"
    assert _row(text, "final snapshot")[0].startswith("0.65 [")
    diff = next(x for x in text.splitlines() if x.startswith("| mtrl − sb3: mean over snapshots |"))
    # mtrl 0.533 − sb3 0.7 = −0.17; mtrl 0.6 − sb3 0.2 = +0.40
    assert "+0.12 {" in diff and "(-0.17, +0.40)" in diff


def test_sb3_labels_are_sb3s_worker_and_take_no_overrides():
    assert parity._parse_impl("sb3-rerun") == ("sb3-rerun", [])
    assert parity._is_sb3("sb3-rerun") and not parity._is_sb3("mtrl-sb3")
    with pytest.raises(SystemExit, match="takes no overrides"):
        parity._parse_impl("sb3-x:agent.lr=1")
    with pytest.raises(SystemExit, match="unknown implementation 'ppo'"):
        parity._parse_impl("ppo")


@pytest.mark.parametrize("cmd", ["goals", "snapshots"])
def test_a_missing_results_directory_is_one_line(tmp_path, cmd):
    with pytest.raises(SystemExit, match="no results directory"):
        parity.main([cmd, "--out", str(tmp_path / "absent"), "--steps", "100"])
    assert not (tmp_path / "absent").exists()
