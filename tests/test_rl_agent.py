"""Multi-task SAC internals: vmap per-task gradients == K backward passes, targets, routing, replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrl.agents import ARCHS, MultiTaskReplayBuffer, MultiTaskSAC, SACConfig
from mtrl.aggregators import make_aggregator

K, B, OBS, ACT = 3, 8, 7, 2


pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(arch: str = "multihead", mode: str = "vmap", agg: str = "ls", **kw) -> MultiTaskSAC:
    torch.manual_seed(0)
    cfg = SACConfig(hidden_dim=16, num_layers=2, arch=arch, per_task_grads=mode, **kw)
    return MultiTaskSAC(OBS, ACT, K, cfg, {"critic": make_aggregator(agg), "actor": make_aggregator(agg)})


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(K, B, OBS, generator=g),
        "action": torch.rand(K, B, ACT, generator=g) * 2 - 1,
        "reward": torch.randn(K, B, generator=g),
        "next_obs": torch.randn(K, B, OBS, generator=g),
        "terminated": (torch.rand(K, B, generator=g) < 0.2).float(),
    }


@pytest.mark.parametrize("arch", ARCHS)
def test_vmap_per_task_grads_equal_k_backward_passes(arch):
    """The one vectorised pass gives the same K trunk-gradient rows (and head gradients) as K backward passes."""
    b = _batch()
    y = torch.randn(K, B)
    noise = torch.randn(K, B, ACT)
    alpha = torch.tensor([0.5, 1.0, 2.0])
    fast, slow = _agent(arch, "vmap"), _agent(arch, "loop")
    for name in ("critic", "actor"):
        if name == "critic":
            Gf, hf, lf = fast.critic_task_grads(b["obs"], b["action"], y)
            Gs, hs, ls_ = slow.critic_task_grads(b["obs"], b["action"], y)
        else:
            Gf, hf, lf, _ = fast.actor_task_grads(b["obs"], noise, alpha)
            Gs, hs, ls_, _ = slow.actor_task_grads(b["obs"], noise, alpha)
        assert Gf.shape == Gs.shape and Gf.shape[0] == K
        assert (Gf.shape[1] == 0) == (arch == "independent")
        torch.testing.assert_close(Gf, Gs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lf, ls_, atol=1e-6, rtol=1e-6)
        assert len(hf) == len(hs) and (len(hf) == 0) == (arch == "shared")
        for a, c in zip(hf, hs):
            torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
        if Gf.shape[1]:
            assert not torch.allclose(Gf[0], Gf[1])  # rows really are per task


def test_ls_is_plain_sac_on_the_mean_loss():
    """With ``ls`` the trunk gets the gradient of the mean task loss and each head ∇L_i / K: plain SAC."""
    ag = _agent("multihead")
    b = _batch()
    y = torch.randn(K, B)
    G, g_heads, losses = ag.critic_task_grads(b["obs"], b["action"], y)
    from mtrl.agents.losses import critic_loss_one

    sh, tk = ag._critic_params()
    total = torch.stack(
        [
            critic_loss_one(
                sh, {n: {k: v[i] for k, v in tk[n].items()} for n in tk}, b["obs"][i], b["action"][i], y[i], ag.n_critic
            )
            for i in range(K)
        ]
    ).mean()
    params = [p for n in ("q1", "q2") for p in sh[n].values()]
    ref = torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, params, retain_graph=True)])
    torch.testing.assert_close(G.mean(0), ref, atol=1e-6, rtol=1e-5)
    heads = [p for n in ("q1", "q2") for p in tk[n].values()]
    for g, r in zip(g_heads, torch.autograd.grad(total, heads)):
        torch.testing.assert_close(g / K, r, atol=1e-6, rtol=1e-5)


def test_termination_stops_bootstrap_truncation_does_not():
    ag = _agent()
    b = _batch()
    noise = torch.zeros(K, B, ACT)
    alpha = ag.alphas()
    y_term = ag.critic_target(b["reward"], b["next_obs"], torch.ones(K, B), noise, alpha)
    y_boot = ag.critic_target(b["reward"], b["next_obs"], torch.zeros(K, B), noise, alpha)
    torch.testing.assert_close(y_term, b["reward"])
    assert (y_boot - b["reward"]).abs().min() > 0


def test_update_changes_parameters_and_logs_diagnostics():
    ag = _agent(agg="imgrad")
    before = [p.detach().clone() for p in ag.actor.parameters()]
    info = ag.update(_batch(), torch.Generator().manual_seed(0))
    assert set(info.results) == {"critic", "actor"}
    st = info.results["critic"].stats
    for key in ("imbalance_ratio", "cos_theta", "conflict_frac", "pareto_failure", "grad_norms", "weights"):
        assert key in st
    assert len(st["grad_norms"]) == K
    assert any(not torch.equal(a, p) for a, p in zip(before, ag.actor.parameters()))
    assert info.alphas.shape == (K,) and np.isfinite(info.metrics["critic_loss"])


def test_aggregate_on_critic_only_calls_no_actor_aggregator():
    ag = _agent(agg="mgda", aggregate_on=("critic",))
    info = ag.update(_batch(), torch.Generator().manual_seed(0))
    assert set(info.results) == {"critic"}


def test_nan_gradients_skip_the_step_and_are_counted():
    ag = _agent(agg="imgrad")
    b = _batch()
    b["reward"][1, 0] = float("nan")
    critic_before = [p.detach().clone() for p in ag.q1.parameters()]
    ag.update(b, torch.Generator().manual_seed(0))
    assert ag.n_skipped["critic"] == 1
    assert all(torch.equal(a, p) for a, p in zip(critic_before, ag.q1.parameters()))
    assert all(torch.isfinite(p).all() for p in ag.q1.parameters())


def test_per_task_alpha_moves_independently():
    ag = _agent()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        ag.update(_batch(), g)
    a = ag.alphas()
    assert a.shape == (K,) and not torch.allclose(a, torch.ones(K)) and len(set(a.tolist())) == K


def test_replay_equal_per_task_sampling_and_round_trip():
    buf = MultiTaskReplayBuffer(K, 5, OBS, ACT)
    for t in range(7):  # wraps around
        obs = np.full((K, OBS), t, np.float32) + np.arange(K)[:, None] * 100
        buf.add(obs, np.zeros((K, ACT)), np.full(K, t), obs + 1, np.zeros(K))
    assert buf.size == 5 and buf.ptr == 2
    batch = buf.sample(4, np.random.default_rng(0))
    assert batch["obs"].shape == (K, 4, OBS) and batch["reward"].shape == (K, 4)
    for k in range(K):  # task k's rows come only from task k's buffer
        assert ((batch["obs"][k, :, 0] // 100) == k).all()
        assert set(batch["reward"][k].tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}
    other = MultiTaskReplayBuffer(K, 5, OBS, ACT)
    other.load_state_dict(buf.state_dict())
    for k in buf.data:
        np.testing.assert_array_equal(other.data[k], buf.data[k])
    assert (other.ptr, other.size) == (buf.ptr, buf.size)
