"""End-to-end multi-task SAC runs on the fake env (and one real MT10 smoke): every aggregator, determinism,
bit-for-bit resume, refusal of bad checkpoints and configs, Ctrl-C, learning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from mtrl._paths import config_dir
from mtrl.agents import SACConfig
from mtrl.aggregators import AGGREGATORS
from mtrl.checkpoint import CheckpointError, RunDirError, latest_checkpoint, list_checkpoints, load_checkpoint
from mtrl.train import ConfigError, _rewrite_argv, _run, check_config, train

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "env=fake", "env.num_tasks=3", "env.eval_episodes=1", "agent.hidden_dim=16", "agent.num_layers=1",
    "agent.batch_size_per_task=8", "agent.buffer_capacity=3000", "train.warmup_steps_per_task=10",
    "train.log_every=20", "train.eval_every=40", "train.checkpoint_every=1000", "train.torch_threads=1",
    "train.progress=false", "logger=none",
]  # fmt: skip
EVAL_KEYS = {"step", "total_env_steps", "protocol", "seed", "method", "success_rate", "episode_return", "tasks"}


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def cfg_of(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=_rewrite_argv(list(overrides)))


def run(tmp: Path, *overrides: str) -> dict:
    return train(cfg_of(*TINY, *overrides), tmp)


def final_state(out: Path) -> dict:
    return load_checkpoint(latest_checkpoint(out / "checkpoints"))


def assert_same(a, b, path="") -> None:
    """Recursive bit-for-bit equality of checkpoint payload parts (tensors, numbers, containers)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), f"differs at {path}"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"keys differ at {path}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"length differs at {path}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"differs at {path}: {a!r} vs {b!r}"


@pytest.mark.parametrize("name", sorted(AGGREGATORS) + ["igbv1+nashmtl", "dwa+imgrad"])
def test_every_registered_aggregator_trains(tmp_path, name):
    from mtrl.train import NEEDS_POSITIVE_LOSSES  # uw: on the critic only (docs/faults.md)

    critic_only = ("agent.aggregate_on=[critic]",) if name in NEEDS_POSITIVE_LOSSES else ()
    out = run(tmp_path, f"agent.aggregator={name}", "train.steps_per_task=30", *critic_only)
    assert out["step"] == 30
    rec = [json.loads(x) for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert rec[-1]["method"] == name and set(rec[-1]) == EVAL_KEYS and rec[-1]["protocol"] == "fake"
    state = final_state(tmp_path)
    assert all(torch.isfinite(v).all() for v in state["agent"]["actor"].values())


def test_aggregator_kwargs_reach_the_aggregator_and_eval_jsonl_schema(tmp_path):
    cfg = cfg_of(*TINY, "agent.aggregator=cagrad", "agent.aggregator_kwargs.c=0.9", "train.steps_per_task=300")
    assert cfg.agent.aggregator_kwargs.c == 0.9
    train(cfg, tmp_path)
    lines = (tmp_path / "eval.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["step"] for r in recs] == [40, 80, 120, 160, 200, 240, 280, 300]
    r = recs[0]
    assert set(r) == EVAL_KEYS and r["total_env_steps"] == 3 * r["step"] and r["seed"] == 1
    assert set(r["tasks"]) == {"fake-0", "fake-1", "fake-2"}
    assert set(r["tasks"]["fake-0"]) == {"success_rate", "episode_return"}


def test_same_seed_twice_is_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, "agent.aggregator=pcgrad", "train.steps_per_task=60")
    run(b, "agent.aggregator=pcgrad", "train.steps_per_task=60")
    sa, sb = final_state(a), final_state(b)
    assert_same(sa["agent"], sb["agent"])
    assert_same(sa["buffer"], sb["buffer"])
    assert (a / "eval.jsonl").read_text() == (b / "eval.jsonl").read_text()
    c = tmp_path / "c"
    run(c, "agent.aggregator=pcgrad", "train.steps_per_task=60", "seed=2")
    assert not torch.equal(final_state(c)["agent"]["actor"]["shared.w0"], sa["agent"]["actor"]["shared.w0"])


IGBV2_FAST = ("agent.aggregator_kwargs.window=5", "agent.aggregator_kwargs.random_windows=2",
              "agent.aggregator_kwargs.update_after=1", "agent.aggregator_kwargs.update_every=10",
              "agent.aggregator_kwargs.batch_size=16", "agent.aggregator_kwargs.hidden_dim=16")  # fmt: skip


# the reference-run preset on the fake env, small: uniform replay, one α aggregated with the losses, no task id
PRESET_FAKE = ("experiment=cagrad_mt10", "env=fake", "agent.batch_size=24", "train.warmup_updates=7",
               "train.eval_every=40")  # fmt: skip


@pytest.mark.parametrize("name", ["pcgrad", "famo", "igbv2", "cagrad_preset"])
def test_resume_matches_an_uninterrupted_run_bit_for_bit(tmp_path, name):
    """N steps straight == N/2, save, load, N/2 more (N/2 mid-episode; randomised / stateful aggregator; IGBv2
    with its own SAC training during both halves; the reference-run preset)."""
    n = 130  # 65 = 2 episodes of 25 + 15 steps: the resume restores an episode in progress
    extra = IGBV2_FAST if name == "igbv2" else PRESET_FAKE if name == "cagrad_preset" else ()
    name = "cagrad" if name == "cagrad_preset" else name
    straight, split = tmp_path / "straight", tmp_path / "split"
    run(straight, f"agent.aggregator={name}", f"train.steps_per_task={n}", *extra)
    run(split, f"agent.aggregator={name}", f"train.steps_per_task={n // 2}", *extra)
    run(split, f"agent.aggregator={name}", f"train.steps_per_task={n}", "resume=true", *extra)
    sa, sb = final_state(straight), final_state(split)
    assert sa["loop"]["step"] == sb["loop"]["step"] == n
    if name == "igbv2":  # its SAC trained before and after the save
        assert sa["agent"]["aggregators"]["critic"]["sac"]["n_updates"] > 0
    if extra is PRESET_FAKE:
        assert set(sa["agent"]["aggregators"]) == {"critic", "actor", "alpha"} and sa["loop"]["step"] == n
    assert_same(sa["agent"], sb["agent"])
    assert_same(sa["buffer"], sb["buffer"])
    assert_same(sa["rng"], sb["rng"])
    ra = [json.loads(x) for x in (straight / "eval.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (split / "eval.jsonl").read_text().splitlines() if json.loads(x)["step"] != n // 2]
    assert ra == rb


def test_resume_from_a_checkpoint_file_continues_in_its_run_directory(tmp_path):
    """``resume=<run>/checkpoints/ckpt_*.pt`` (as ``resume=<run dir>``) writes into that run, not Hydra's new one,
    and continues exactly like ``resume=true`` in place."""
    first, straight = tmp_path / "first", tmp_path / "straight"
    run(straight, "train.steps_per_task=60")
    run(first, "train.steps_per_task=30", "train.checkpoint_every=10", "train.keep_checkpoints=5")
    ckpt = first / "checkpoints" / "ckpt_0000000030.pt"
    _run(cfg_of(*TINY, "train.steps_per_task=60", f"resume={ckpt}"), tmp_path / "hydra_dir")
    assert not (tmp_path / "hydra_dir").exists()
    assert_same(final_state(first)["agent"], final_state(straight)["agent"])
    steps = [json.loads(x)["step"] for x in (first / "eval.jsonl").read_text().splitlines()]
    assert steps == [30, 40, 60]  # its own evaluation at the end of the first part, then the continuation's
    ra = [json.loads(x) for x in (straight / "eval.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (first / "eval.jsonl").read_text().splitlines() if json.loads(x)["step"] != 30]
    assert ra == rb


def test_keep_last_n_checkpoints(tmp_path):
    run(tmp_path, "train.steps_per_task=50", "train.checkpoint_every=10", "train.keep_checkpoints=2")
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["ckpt_0000000040.pt", "ckpt_0000000050.pt"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp files left


def test_corrupt_or_mismatched_checkpoint_is_refused_and_kept(tmp_path):
    run(tmp_path, "train.steps_per_task=20")
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    with pytest.raises(CheckpointError, match="does not match.*hidden_dim"):
        run(tmp_path, "train.steps_per_task=40", "resume=true", "agent.hidden_dim=32")
    raw = bytearray(ckpt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        run(tmp_path, "train.steps_per_task=40", "resume=true")
    assert ckpt.exists() and ckpt.read_bytes() == bytes(raw)  # left in place, untouched
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not an mtrl checkpoint"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("key", ["log_std", "alpha_loss", "tanh_correction"])
def test_a_resume_under_another_sac_setting_is_refused(tmp_path, key):
    """The log-σ squashing, the temperature loss and the tanh term change every update after the checkpoint: a
    resume that would switch them is refused (both ways), one with the run's own setting continues."""
    other = {"log_std": {"tanh": "clamp", "clamp": "tanh"}, "alpha_loss": {"alpha": "log_alpha", "log_alpha": "alpha"},
             "tanh_correction": {"exact": "capped", "capped": "exact"}}  # fmt: skip
    default = getattr(SACConfig, key)
    value = other[key][default]
    override = f"agent.{key}={value}"  # not the default
    run(tmp_path / "default", "train.steps_per_task=20")
    with pytest.raises(CheckpointError, match=f"does not match.*agent.{key}: checkpoint '{default}' vs run '{value}'"):
        run(tmp_path / "default", "train.steps_per_task=40", "resume=true", override)
    run(tmp_path / "other", "train.steps_per_task=20", override)
    with pytest.raises(CheckpointError, match="does not match"):
        run(tmp_path / "other", "train.steps_per_task=40", "resume=true")
    run(tmp_path / "other", "train.steps_per_task=40", "resume=true", override)


def _lock_is_free(directory: Path) -> bool:
    """Whether another open file can take the run directory's lock now (flock is per open file: a lock this
    process still holds through a leaked handle refuses it)."""
    import fcntl

    with open(directory / ".lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return True


def test_a_refused_run_leaves_the_directory_unlocked(tmp_path, monkeypatch):
    run(tmp_path, "train.steps_per_task=20")
    assert _lock_is_free(tmp_path)
    with pytest.raises(RunDirError, match="already holds a run"):  # a fresh run into a finished one
        run(tmp_path, "train.steps_per_task=40")
    assert _lock_is_free(tmp_path)
    with pytest.raises(CheckpointError, match="does not match"):  # refused at the resume check, after the lock
        run(tmp_path, "train.steps_per_task=40", "resume=true", "agent.hidden_dim=32")
    assert _lock_is_free(tmp_path)
    import mtrl.train as train_module

    built = []

    def build_then_fail(*args, **kwargs):  # the last thing open_run builds fails: all before it must be closed
        built.append(args[-1])  # the training envs
        raise OSError("no evaluation envs")

    monkeypatch.setattr(train_module, "make_eval_envs", build_then_fail)
    with pytest.raises(OSError, match="no evaluation envs"):
        run(tmp_path, "train.steps_per_task=40", "resume=true")
    assert _lock_is_free(tmp_path) and built and built[0].closed
    monkeypatch.undo()
    run(tmp_path, "train.steps_per_task=40", "resume=true")  # and the run continues


@pytest.mark.parametrize(
    "override, message",
    [
        ("agent.aggregator=nope", "unknown aggregator 'nope'"),
        ("agent.aggregator_kwargs.bogus=1", "unknown argument"),
        ("train.steps_per_task=0", "train.steps_per_task must be a positive"),
        ("train.eval_every=-5", "train.eval_every must be a positive"),
        ("agent.batch_size=100", "multiple of the 3 tasks"),
        ("agent.arch=moe", "unknown architecture"),
        ("agent.aggregate_on=[critic,value]", "unknown loss"),
        ("device=cuda:7" if not torch.cuda.is_available() else "device=tpu", "device"),
        ("env.task_id=index", "env.task_id must be one of onehot, none"),
        ("env.task_id=none", "agent.arch=shared"),
        ("agent.alpha=per_env", "agent.alpha must be one of per_task, shared"),
        ("agent.aggregate_on=[critic,actor,alpha]", "needs agent.alpha=shared"),
        ("agent.init=he", "agent.init must be one of torch, xavier"),
        ("agent.replay=prioritised", "agent.replay must be one of stratified, uniform"),
        ("train.warmup_updates=0", "train.warmup_updates must be an integer >= 1"),
        ("train.eval_at_start=sometimes", "train.eval_at_start must be true or false"),
    ],
)
def test_bad_config_is_rejected_before_anything_is_built(override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(cfg_of(*TINY, override))


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mtrl.train", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("args", [["agent.aggregator=nope"], ["train.steps_per_tsk=5"], ["env=mt11"]])
def test_cli_bad_config_one_line_nonzero_exit(tmp_path, args):
    p = _cli(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mtrl.train: error:"), p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "run").exists()


def test_ctrl_c_writes_a_checkpoint(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*TINY, "train.steps_per_task=1000000", "train.eval_every=1000000", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen([sys.executable, "-m", "mtrl.train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 90
    while not (tmp_path / "resolved_config.yaml").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    assert ckpt is not None and 0 < load_checkpoint(ckpt)["loop"]["step"] < 1000000


@pytest.mark.slow  # real Meta-World or a learning run: CI's slow step (pytest -m slow)
def test_fake_env_learning_improves(tmp_path):
    """Success of the deterministic policy rises from ~0 (untrained) to most episodes within 2,500 steps."""
    run(tmp_path, "env.num_tasks=2", "agent.hidden_dim=64", "agent.num_layers=2", "agent.batch_size_per_task=32",
        "train.warmup_steps_per_task=200", "train.steps_per_task=2500", "train.eval_every=250",
        "env.eval_episodes=5", "agent.aggregator=imgrad", "train.log_every=500")  # fmt: skip
    success = [json.loads(x)["success_rate"] for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert len(success) == 10
    assert np.mean(success[:3]) <= 0.2 and np.mean(success[-3:]) >= 0.4, success


@pytest.mark.slow  # real Meta-World or a learning run: CI's slow step (pytest -m slow)
def test_real_mt10_smoke(tmp_path):
    """The smoke preset on real MT10 (one build of MT10 for training, one for evaluation)."""
    cfg = cfg_of(
        "env=mt10", "experiment=smoke", "agent.aggregator=imgrad", "train.progress=false", "train.torch_threads=1"
    )
    out = train(cfg, tmp_path)
    assert out["step"] == 300
    rec = json.loads((tmp_path / "eval.jsonl").read_text().splitlines()[-1])
    assert rec["protocol"] == "mt10" and len(rec["tasks"]) == 10 and "peg-insert-side-v3" in rec["tasks"]
    tags = _tb_tags(tmp_path / "tb")
    for tag in ("eval/success_rate", "train/critic_loss", "aggregator/imbalance_ratio", "aggregator/cos_theta",
                "aggregator/weight/reach-v3", "aggregator/grad_norm/window-close-v3", "aggregator/pareto_failure",
                "aggregator/conflict_frac", "train_tasks/push-v3/alpha", "time/sps", "time/update_ms",
                "time/aggregator_ms", "rollout/success_rate", "eval_tasks/reach-v3/success_rate"):  # fmt: skip
        assert tag in tags, tag


def _tb_tags(tb_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


# ---------------------------------------------------------------------------------------------- reference-run keys
def _evals(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]


def test_warmup_updates_are_done_at_once_when_warmup_ends(tmp_path):
    """``train.warmup_updates=U``: the step that ends warm-up does U updates, every later step one (fb/mtrl:
    ``num_updates = init_steps if step == init_steps else 1``); the default does one."""
    counts = {}
    for u in (1, 6):
        out = tmp_path / f"u{u}"
        run(out, "train.steps_per_task=20", f"train.warmup_updates={u}")  # warm-up 10: updates at steps 10..20
        counts[u] = int(final_state(out)["agent"]["n_updates"])
    assert counts == {1: 11, 6: 16}


def test_eval_at_start_adds_an_evaluation_of_the_untrained_policy(tmp_path):
    run(tmp_path / "a", "train.steps_per_task=40", "train.eval_at_start=true")
    run(tmp_path / "b", "train.steps_per_task=40")
    a, b = _evals(tmp_path / "a"), _evals(tmp_path / "b")
    assert [r["step"] for r in a] == [0, 40] and [r["step"] for r in b] == [40]
    assert a[1] == b[0]  # evaluating draws nothing from the training RNG streams


def test_task_id_none_drops_the_one_hot_and_one_mlp_cannot_tell_the_tasks_apart(tmp_path):
    """``env.task_id=none`` (with the one MLP it requires): observations without the one-hot; the policy then acts
    the same in every task for the same position, while with the one-hot it does not."""
    from mtrl.envs import make_envs
    from mtrl.train import build_agent

    acts = {}
    for tid in ("onehot", "none"):
        cfg = cfg_of(*TINY, "agent.arch=shared", f"env.task_id={tid}")
        check_config(cfg)
        env = make_envs(cfg.env, 0)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (3, 2 + 3 * (tid == "onehot"))
        agent = build_agent(cfg, obs.shape[1], 2, 3, torch.device("cpu"))
        same_pos = np.concatenate([np.tile([[0.1, -0.2]], (3, 1)), obs[:, 2:]], axis=1)
        acts[tid] = agent.act(same_pos, deterministic=True)
    assert np.allclose(acts["none"], acts["none"][0]) and not np.allclose(acts["onehot"], acts["onehot"][0])


def test_resume_with_another_alpha_or_replay_is_refused(tmp_path):
    """The new keys that change shapes or sampling are in the checkpoint fingerprint (only when not default, so
    checkpoints of default runs written before they existed still resume)."""
    run(tmp_path, "train.steps_per_task=20")
    assert "agent.alpha" not in final_state(tmp_path)["fingerprint"]
    with pytest.raises(CheckpointError, match="agent.alpha: checkpoint 'per_task' vs run 'shared'"):
        run(tmp_path, "train.steps_per_task=40", "resume=true", "agent.alpha=shared")
    with pytest.raises(CheckpointError, match="agent.replay"):
        run(tmp_path, "train.steps_per_task=40", "resume=true", "agent.replay=uniform")


@pytest.mark.parametrize("preset", ["cagrad_mt10", "imgrad_mt10"])
def test_reference_presets_compose_to_the_published_run_and_smoke(tmp_path, preset):
    """``experiment=cagrad_mt10`` / ``imgrad_mt10`` hold the CAGrad fork's run.sh settings (README table) and run
    (here on the fake env, small)."""
    cfg = cfg_of(f"experiment={preset}")
    check_config(cfg)
    e, a, t = cfg.env, cfg.agent, cfg.train
    assert (e.name, e.task_id, e.eval_episodes, e.max_episode_steps, e.reward_version, e.fixed_goal) == (
        "mt10_legacy", "none", 1, 150, "v1", True)  # fmt: skip
    assert e.normalize_reward and e.reward_alpha == 0.001
    assert (a.arch, a.alpha, list(a.aggregate_on), a.init, a.replay, a.batch_size) == (
        "shared", "shared", ["critic", "actor", "alpha"], "xavier", "uniform", 1280)  # fmt: skip
    assert (a.hidden_dim, a.num_layers, a.buffer_capacity, a.lr, a.alpha_lr, a.gamma, a.tau, a.init_alpha) == (
        400, 3, 1_000_000, 3e-4, 3e-4, 0.99, 0.005, 1.0)  # fmt: skip
    assert (t.steps_per_task, t.warmup_steps_per_task, t.warmup_updates, t.eval_every, t.eval_at_start) == (
        2_000_000, 1500, 1500, 30_000, True)  # fmt: skip
    expected = {"cagrad_mt10": ("cagrad", {"c": 0.9}), "imgrad_mt10": ("imgrad", {})}[preset]
    assert (a.aggregator, dict(a.aggregator_kwargs)) == expected
    assert cfg_of("experiment=mt10_reference", "agent.aggregator=ls").agent.aggregator_kwargs == {}
    out = run(tmp_path, *PRESET_FAKE, f"experiment={preset}", "train.steps_per_task=60")
    assert out["step"] == 60 and [r["step"] for r in _evals(tmp_path)] == [0, 40, 60]
    state = final_state(tmp_path)
    assert state["agent"]["log_alpha"].shape == (1,) and state["agent"]["n_updates"] == 7 + 50
    actor = state["agent"]["actor"]
    assert actor["shared.w0"].shape[0] == 2 and not [k for k in actor if k.startswith("task.")]  # one MLP, 2-d obs


@pytest.mark.slow  # real Meta-World or a learning run: CI's slow step (pytest -m slow)
def test_real_mt10_legacy_reference_preset_smoke(tmp_path):
    """``experiment=cagrad_mt10`` on real MT10 (tiny network and budget): 39-d observations without the one-hot,
    the reference normalisation on the training rewards, an evaluation at step 0 on the training goals."""
    cfg = cfg_of("experiment=cagrad_mt10", "agent.hidden_dim=32", "agent.num_layers=1", "agent.batch_size=80",
                 "agent.buffer_capacity=5000", "train.steps_per_task=60", "train.warmup_steps_per_task=30",
                 "train.warmup_updates=5", "train.eval_every=60", "train.log_every=30", "train.checkpoint_every=60",
                 "train.progress=false", "train.torch_threads=1", "logger=none")  # fmt: skip
    out = train(cfg, tmp_path)
    assert out["step"] == 60
    recs = _evals(tmp_path)
    assert [r["step"] for r in recs] == [0, 60] and recs[0]["protocol"] == "mt10_legacy" and len(recs[0]["tasks"]) == 10
    state = final_state(tmp_path)
    assert state["fingerprint"]["obs_dim"] == 39 and state["agent"]["n_updates"] == 5 + 30
    norm = json.loads(state["env"])["reward_norm"]
    assert len(norm["var"]) == 10 and all(v != 1.0 for v in norm["var"])  # 60 steps of estimates per task


@pytest.mark.parametrize("rate, ok", [("0", False), ("1.5", False), ("true", False), ("1", True), ("0.001", True)])
def test_reward_alpha_is_checked(rate, ok):
    cfg = cfg_of("env=mt10_legacy", f"env.reward_alpha={rate}")
    if ok:
        check_config(cfg)
    else:
        with pytest.raises(ConfigError, match="env.reward_alpha must be a number in"):
            check_config(cfg)
