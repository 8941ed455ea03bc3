"""The fake multi-task env copies Meta-World's SAME_STEP autoreset; helpers recover final obs and success."""

from __future__ import annotations

import numpy as np

from mtrl.envs import EvalResult, FakeMultiTaskVecEnv, evaluate, step_success, true_next_obs


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
