"""The fake multi-task env copies Meta-World's SAME_STEP autoreset; helpers recover final obs and success."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from mtrl.envs import EvalResult, FakeMultiTaskVecEnv, evaluate, make_envs, step_success, true_next_obs


def test_fake_env_same_step_autoreset_final_obs_and_success():
    env = FakeMultiTaskVecEnv(num_tasks=3, max_episode_steps=4, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 5) and (obs[:, 2:] == np.eye(3)).all()  # one-hot task id
    for t in range(4):
        nxt, rew, term, trunc, info = env.step(np.zeros((3, 2)))
        if t < 3:
            assert not trunc.any() and "final_obs" not in info
            np.testing.assert_allclose(nxt, obs)  # zero action: the point does not move
        obs_last = nxt
    assert trunc.all() and not term.any()
    real = true_next_obs(obs_last, info)
    np.testing.assert_allclose(real, obs)  # true last observation = where the point was
    assert not np.allclose(obs_last[:, :2], obs[:, :2])  # the returned one is already the next episode's
    assert (info["_success"] == 0).all()  # like Meta-World: on the last step success is only in final_info


def test_step_success_reads_final_info():
    info = {"success": np.array([0.0, 1.0, 0.0]), "_success": np.array([False, True, False]),
            "final_info": {"success": np.array([1.0, 0.0, 0.0]), "_success": np.array([True, False, False])},
            "_final_info": np.array([True, False, False])}  # fmt: skip
    assert step_success(info, 3).tolist() == [True, True, False]
    assert step_success({}, 2).tolist() == [False, False]


def test_fake_env_deterministic_and_state_round_trip():
    a, b = FakeMultiTaskVecEnv(2, 5, seed=3), FakeMultiTaskVecEnv(2, 5, seed=99)
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(oa, ob)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (20, 2, 2))
    for x in acts[:7]:
        a.step(x)
    state = a.get_state()
    tail = [a.step(x)[0] for x in acts[7:]]
    c = FakeMultiTaskVecEnv(2, 5, seed=0)
    c.set_state(state)
    for x, ref in zip(acts[7:], tail):
        np.testing.assert_array_equal(c.step(x)[0], ref)


def test_fake_env_is_learnable_by_a_goal_seeking_policy_and_not_by_zero_actions():
    env = FakeMultiTaskVecEnv(num_tasks=4, max_episode_steps=25, seed=0, terminate_on_success=True)
    names = [f"fake-{k}" for k in range(4)]

    def expert(obs):
        return np.clip((env.goals - obs[:, :2]) / 0.15, -1, 1)

    good = evaluate(expert, env, names, episodes=3, seed=1)
    idle = evaluate(lambda o: np.zeros((4, 2)), env, names, episodes=3, seed=1)
    assert isinstance(good, EvalResult) and good.success_rate == 1.0
    assert idle.success_rate == 0.0  # (returns not compared: a success ends the episode early)


# ---------------------------------------------------------------------------------------------- reward normalisation
def _hand_reference(rewards: np.ndarray, alpha: float) -> np.ndarray:
    """garage ``NormalizedEnv`` (via mtenv) written out per env and per step: μ, σ² start at 0, 1; one update of
    both per step (σ² with the updated μ), then r / (√σ² + 1e-8)."""
    out = np.empty_like(rewards)
    for k in range(rewards.shape[1]):
        mean, var = 0.0, 1.0
        for t in range(rewards.shape[0]):
            r = float(rewards[t, k])
            mean = (1 - alpha) * mean + alpha * r
            var = (1 - alpha) * var + alpha * (r - mean) ** 2
            out[t, k] = r / (var**0.5 + 1e-8)
    return out


def _record(env, actions: np.ndarray) -> np.ndarray:
    env.reset(seed=0)
    return np.stack([env.step(a)[1] for a in actions])


def test_reward_normalisation_equals_the_reference_formula_on_a_recorded_sequence():
    """A reward sequence recorded from an env (3 tasks, 400 steps, several episodes), normalised by the wrapper,
    equals the reference computed by hand; a state round-trip mid-way continues identically."""
    from mtrl.envs import ExponentialRewardNormalization

    acts = np.random.default_rng(1).uniform(-1, 1, (400, 3, 2))
    raw = 5.0 * _record(FakeMultiTaskVecEnv(3, 25, seed=0), acts)  # x5: a variance far from the initial 1
    wrapped = ExponentialRewardNormalization(FakeMultiTaskVecEnv(3, 25, seed=0), reward_alpha=0.001)
    wrapped.reset(seed=0)
    got = []
    for t, a in enumerate(acts):
        r = wrapped.env.step(a)[1]
        np.testing.assert_array_equal(r * 5.0, raw[t])  # same recorded rewards
        got.append(wrapped.normalize(5.0 * r))
        if t == 199:
            state = wrapped.get_state()
    np.testing.assert_allclose(np.stack(got), _hand_reference(raw, 0.001), rtol=1e-12, atol=0)
    # one pinned value by hand: r = 2 from the start: μ = 0.002, σ² = 0.999 + 0.001·1.998² = 1.002992004
    one = ExponentialRewardNormalization(FakeMultiTaskVecEnv(1, 5), reward_alpha=0.001)
    assert one.normalize(np.array([2.0]))[0] == pytest.approx(2.0 / (1.002992004**0.5 + 1e-8), rel=1e-12)
    # state round-trip: restored at step 200, the rest of the sequence normalises identically
    again = ExponentialRewardNormalization(FakeMultiTaskVecEnv(3, 25), reward_alpha=0.001)
    again.set_state(state)
    np.testing.assert_array_equal(np.stack([again.normalize(r) for r in raw[200:]]), np.stack(got[200:]))


def test_metaworld_exponential_normaliser_is_not_the_reference():
    """Meta-World 3.1's ``NormalizeRewardsExponential`` updates its estimates twice per step: on the same
    sequence it departs from the reference formula (which is why mtrl has its own wrapper)."""
    from metaworld.wrappers import NormalizeRewardsExponential

    rewards = np.random.default_rng(0).uniform(0, 10, 300)
    mw = NormalizeRewardsExponential(0.001, gym.make("CartPole-v1"))
    theirs = []
    for r in rewards:
        mw._update_reward_estimate(r)  # what its step() does before normalising
        theirs.append(mw._apply_normalize_reward(r))
    ref = _hand_reference(rewards[:, None], 0.001)[:, 0]
    assert np.abs(np.array(theirs) / ref - 1).max() > 1e-3


# ---------------------------------------------------------------------------------------------- evaluation goals
def _env_cfg(name: str, **over):
    from omegaconf import OmegaConf

    from mtrl._paths import config_dir

    cfg = OmegaConf.load(f"{config_dir()}/env/{name}.yaml")
    for k, v in over.items():
        cfg[k] = v
    return cfg


def _goal(obs: np.ndarray) -> tuple[float, ...]:
    """The goal position in a Meta-World v3 observation (entries 36..38 of the 39; a one-hot may follow), as the
    float32 the vector env returns."""
    return tuple(float(x) for x in np.asarray(obs, dtype=np.float32)[36:39])


def _training_goals(train_envs) -> list[set[tuple]]:
    """Per sub-env, the goals of every task in its list (set on the raw env, then reset)."""
    from mtrl.envs._metaworld import sub_envs

    goals = []
    for sub in sub_envs(train_envs):
        raw = sub.unwrapped
        found = set()
        for task in sub.get_wrapper_attr("tasks"):
            raw.set_task(task)
            found.add(_goal(raw.reset()[0]))
        goals.append(found)
    return goals


def _evaluation_goals(eval_envs, eval_seed: int, episodes: int) -> list[set[tuple]]:
    """Per sub-env, the goals of ``episodes`` evaluation episodes started as ``mtrl.envs.evaluate`` starts them."""
    eval_envs.reset(seed=eval_seed)
    seen = [set() for _ in range(eval_envs.num_envs)]
    for _ in range(episodes):
        obs, _ = eval_envs.reset()
        for k in range(eval_envs.num_envs):
            seen[k].add(_goal(obs[k]))
    return seen


@pytest.mark.parametrize("protocol", ["mt10", "mt10_legacy"])
def test_every_evaluation_goal_is_a_training_goal(protocol):
    """Real MT10 (one training and one evaluation build): per task, each evaluation episode's goal is one of the
    task's training goals; ``mt10_legacy``: the one fixed training goal, every time."""
    from mtrl.train import make_eval_envs

    cfg = _env_cfg(protocol)
    train_envs = make_envs(cfg, 1)
    eval_envs, eval_seed = make_eval_envs(cfg, 1, train_envs)
    try:
        assert eval_seed != 1  # their own RNG ...
        train_goals = _training_goals(train_envs)
        eval_goals = _evaluation_goals(eval_envs, eval_seed, episodes=20)
        if protocol == "mt10_legacy":  # the reward normaliser's estimates travel with the env state
            from mtrl.envs import env_get_state, env_set_state

            train_envs.reset(seed=1)
            acts = np.random.default_rng(0).uniform(-1, 1, (25, 10, 4))
            for a in acts[:20]:
                train_envs.step(a)
            state, saved = env_get_state(train_envs), train_envs.get_state()
            for a in acts[20:]:
                train_envs.step(a)
            assert train_envs.get_state() != saved
            env_set_state(train_envs, state, np.zeros(0))
            assert train_envs.get_state() == saved and all(v != 1.0 for v in saved["var"])
    finally:
        train_envs.close()
        eval_envs.close()
    for k, (tr, ev) in enumerate(zip(train_goals, eval_goals)):
        assert ev <= tr, f"task {k}: evaluation goals {ev - tr} are not training goals"  # ... never their own goals
        if protocol == "mt10_legacy":
            assert len(tr) == 1 and ev == tr
    if protocol == "mt10":  # 20 episodes really do sample among the 50 training goals
        assert min(len(ev) for ev in eval_goals) > 1 and min(len(tr) for tr in train_goals) > 10


@pytest.mark.parametrize("protocol", ["mt1", "mt10_legacy"])
def test_eval_goals_unseen_are_never_training_goals(protocol):
    """``env.eval_goals=unseen`` (a diagnostic): every evaluation episode's goal is outside the run's training goals
    (MT1 reach-v3: the evaluation seed's own 50 goals; ``mt10_legacy``: its own fixed goal per task); the default
    stays on the training goals."""
    from mtrl.train import make_eval_envs

    cfg = _env_cfg(protocol, **({"task": "reach-v3"} if protocol == "mt1" else {}))
    assert cfg.eval_goals == "train"
    cfg.eval_goals = "unseen"
    train_envs = make_envs(cfg, 1)
    eval_envs, eval_seed = make_eval_envs(cfg, 1, train_envs)
    try:
        train_goals = _training_goals(train_envs)
        eval_goals = _evaluation_goals(eval_envs, eval_seed, episodes=8)
    finally:
        train_envs.close()
        eval_envs.close()
    for k, (tr, ev) in enumerate(zip(train_goals, eval_goals)):
        assert ev and not ev & tr, f"task {k}: unseen evaluation goals include training goals {ev & tr}"
    if protocol == "mt1":
        assert len(eval_goals[0]) > 1  # resampled among the evaluation seed's own goals
    with pytest.raises(ValueError, match="unseen_goals is for evaluation envs"):
        make_envs(cfg, 1, unseen_goals=True)


def test_eval_goals_bad_values_are_refused_in_one_line():
    from mtrl.train import ConfigError, check_config
    from tests.test_rl_train import TINY, cfg_of

    with pytest.raises(ConfigError, match="env.eval_goals must be one of train, unseen, got 'test'"):
        check_config(cfg_of(*TINY, "env.eval_goals=test"))
    with pytest.raises(ConfigError, match="the fake env has one goal per task"):
        check_config(cfg_of(*TINY, "env.eval_goals=unseen"))


def test_an_evaluation_is_the_same_whatever_the_envs_ran_before():
    """MT1 reach-v3: the same deterministic policy evaluated with the same seed gets the same returns on the same
    envs after other evaluations and resets, and on freshly built envs (a resumed run's). Meta-World v3 ignores the
    seed of ``reset`` (its ``seed()`` reseeds it), so before :func:`mtrl.envs.reseed` the second evaluation saw
    other goals: 491.9 then 483.9 for one checkpoint."""
    from mtrl.envs import evaluate
    from mtrl.train import make_eval_envs

    cfg = _env_cfg("mt1", task="reach-v3")
    cfg.max_episode_steps = 60
    w = np.random.default_rng(0).normal(size=(39, 4)) * 0.3

    def policy(obs):  # deterministic, depends on the goal in the observation
        return np.tanh(np.asarray(obs) @ w)

    train_envs = make_envs(cfg, 1)
    eval_envs, eval_seed = make_eval_envs(cfg, 1, train_envs)
    fresh, _ = make_eval_envs(cfg, 1, train_envs)
    try:
        first = evaluate(policy, eval_envs, ["reach-v3"], 4, eval_seed).returns
        evaluate(policy, eval_envs, ["reach-v3"], 3, eval_seed + 1)  # other episodes in between
        eval_envs.reset()
        again = evaluate(policy, eval_envs, ["reach-v3"], 4, eval_seed).returns
        other_seed = evaluate(policy, fresh, ["reach-v3"], 4, eval_seed + 7).returns
        on_fresh = evaluate(policy, fresh, ["reach-v3"], 4, eval_seed).returns
        goals = _evaluation_goals(eval_envs, eval_seed, episodes=6)[0]
    finally:
        for e in (train_envs, eval_envs, fresh):
            e.close()
    assert first == again == on_fresh
    assert other_seed != first and len(goals) > 1  # the seed matters; episodes do get different goals


def test_evaluation_goals_follow_the_training_goals_across_a_resume():
    """MT1 reach-v3: an env restored from a checkpoint's env state (Meta-World task lists) gives its evaluation envs
    the restored goals, not those of its own construction; an evaluation env with its own goals (the old way)
    would have none of them."""
    from mtrl.envs import env_get_state, env_set_state
    from mtrl.train import make_eval_envs

    cfg = _env_cfg("mt1", task="reach-v3")
    original, other = make_envs(cfg, 1), make_envs(cfg, 2)
    try:
        goals_1 = _training_goals(original)[0]
        goals_2 = _training_goals(other)[0]
        assert not goals_1 & goals_2  # different seeds, different goal sets
        env_set_state(other, env_get_state(original), np.zeros(0))  # "resume" run 1's state into an env of seed 2
        eval_envs, eval_seed = make_eval_envs(cfg, 1, other)
        ev = _evaluation_goals(eval_envs, eval_seed, episodes=15)[0]
        eval_envs.close()
        old_way = make_envs(cfg, 1 + 10_000)  # the evaluation env before the fix: its own seed, its own goals
        assert not _training_goals(old_way)[0] & goals_1
        old_way.close()
    finally:
        original.close()
        other.close()
    assert ev <= goals_1 and len(ev) > 1
