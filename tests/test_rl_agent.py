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


@pytest.mark.parametrize("mode", ["batched", "vmap"])
@pytest.mark.parametrize("arch", ARCHS)
def test_vmap_per_task_grads_equal_k_backward_passes(arch, mode):
    """The one vectorised pass (``vmap``, or ``batched``: one ordinary backward through the task-batched network)
    gives the same K trunk-gradient rows (and head gradients) as K backward passes."""
    b = _batch()
    y = torch.randn(K, B)
    noise = torch.randn(K, B, ACT)
    alpha = torch.tensor([0.5, 1.0, 2.0])
    fast, slow = _agent(arch, mode), _agent(arch, "loop")
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


# ---------------------------------------------------------------------------------------------- reference-run keys
def test_init_xavier_gives_glorot_uniform_weights_and_zero_biases():
    """``agent.init``: torch = nn.Linear's ±1/√in for weights and biases; xavier = ±√(6/(in+out)) weights (spread
    over that range: std ≈ bound/√3) and zero biases, drawn separately for each task's head."""
    from mtrl.agents import TaskMLP

    torch.manual_seed(0)
    ours = TaskMLP(60, 10, 200, 1, num_tasks=3, arch="multihead", init="xavier")
    torch.manual_seed(0)
    default = TaskMLP(60, 10, 200, 1, num_tasks=3, arch="multihead")
    for net in (ours, default):
        w0, w1 = net.shared["w0"], net.task["w1"]  # [60, 200] shared, [3, 200, 10] heads
        xavier = net is ours
        for w, (d_in, d_out) in ((w0, (60, 200)), (w1, (200, 10))):
            bound = (6 / (d_in + d_out)) ** 0.5 if xavier else d_in**-0.5
            assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
            assert abs(w.std().item() - bound / 3**0.5) < 0.05 * bound
        biases = [net.shared["b0"], net.task["b1"]]
        assert all((b == 0).all() for b in biases) == xavier
        assert not torch.equal(w1[0], w1[1])  # each task's head drawn on its own
    with pytest.raises(ValueError, match="unknown initialisation"):
        TaskMLP(4, 2, 8, 1, 2, "multihead", init="he")


def test_shared_alpha_is_one_temperature_for_every_task():
    """``agent.alpha=shared``: one log α; every task's α is that value, it moves, and the critic target uses it."""
    ag = _agent(alpha="shared", diagnostics_every=1)  # info carries α on every update
    assert ag.log_alpha.shape == (1,)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        info = ag.update(_batch(), g)
    a = ag.alphas()
    assert a.shape == (K,) and len(set(a.tolist())) == 1 and a[0] != 1.0
    assert (info.alphas == a.numpy()).all()
    b = _batch()
    y = ag.critic_target(b["reward"], b["next_obs"], b["terminated"], torch.zeros(K, B, ACT), a)
    y_one = ag.critic_target(b["reward"], b["next_obs"], b["terminated"], torch.zeros(K, B, ACT), a[:1].expand(K))
    torch.testing.assert_close(y, y_one)


def _spy(name: str):
    """An aggregator of the registry that records the gradient matrices and losses it is called with."""
    base = type(make_aggregator(name))

    class Spy(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

        def __call__(self, G, losses=None):
            self.calls.append((G.detach().clone(), losses))
            return super().__call__(G, losses=losses)

    return Spy()


def test_alpha_in_aggregate_on_routes_the_per_task_alpha_gradients_through_the_aggregator():
    """``aggregate_on=[..., alpha]`` with a shared α: the aggregator gets the K x 1 matrix of the per-task gradients
    of log α (d/dlog α of −α(log π_i + H̄) = that loss itself) and its direction is the gradient α's optimiser
    steps with: ``ls`` there equals the plain mean; another method (MGDA) gives its own direction, with the same
    critic and actor."""
    agents = {}
    for label, agg, on in (("mean", "ls", ("critic", "actor")), ("ls", "ls", ("critic", "actor", "alpha")),
                           ("mgda", "mgda", ("critic", "actor", "alpha"))):  # fmt: skip
        torch.manual_seed(0)
        cfg = SACConfig(hidden_dim=16, num_layers=2, arch="shared", alpha="shared", aggregate_on=on,
                        alpha_loss="alpha")  # the α form, whose log-α gradient is the loss itself
        aggs = {"critic": make_aggregator("ls"), "actor": make_aggregator("ls"), "alpha": _spy(agg)}
        ag = MultiTaskSAC(OBS, ACT, K, cfg, aggs)
        ag.update(_batch(), torch.Generator().manual_seed(0))
        agents[label] = ag
    spy = agents["ls"].aggregators["alpha"]
    assert len(spy.calls) == 1 and "alpha" not in agents["mean"].aggregators  # not called when not aggregated
    G, losses = spy.calls[0]
    assert G.shape == (K, 1) and len(set(G[:, 0].tolist())) == K
    torch.testing.assert_close(G[:, 0], losses)
    grad = {label: ag.log_alpha.grad for label, ag in agents.items()}  # what the α optimiser stepped with
    torch.testing.assert_close(grad["mean"], G.mean(0))
    torch.testing.assert_close(grad["ls"], grad["mean"])
    torch.testing.assert_close(grad["mgda"], make_aggregator("mgda")(G).direction)
    assert (grad["mgda"] - grad["mean"]).abs().item() > 1e-3 * grad["mean"].abs().item()
    for name in ("actor", "q1"):
        for p, q in zip(getattr(agents["mgda"], name).parameters(), getattr(agents["mean"], name).parameters()):
            assert torch.equal(p, q)
    with pytest.raises(ValueError, match="alpha=shared"):
        _agent(aggregate_on=("critic", "alpha"))


def _filled_buffer(cap: int = 50) -> MultiTaskReplayBuffer:
    buf = MultiTaskReplayBuffer(K, cap, OBS, ACT)
    for t in range(cap):  # obs[..., 0] = 100 k + t: the task and slot of every sample can be read back
        obs = (np.arange(K)[:, None] * 100 + t + np.zeros((K, OBS))).astype(np.float32)
        buf.add(obs, np.zeros((K, ACT)), np.full(K, t), obs, np.zeros(K))
    return buf


def test_uniform_replay_draws_the_batch_from_all_tasks_together():
    """``agent.replay=uniform``: ``total`` samples, a random number per task (about total/K on average), each from
    its own task's buffer; weights 1/n_k on real samples, 0 on padding."""
    buf = _filled_buffer()
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(200):
        b = buf.sample_uniform(30, rng)
        w = b["weight"].numpy()
        n = (w > 0).sum(1)
        assert n.sum() == 30 and b["obs"].shape == (K, w.shape[1], OBS) and w.shape[1] == n.max()
        for k in range(K):
            assert np.allclose(w[k][w[k] > 0], 1 / n[k]) and (b["obs"][k, w[k] > 0, 0] // 100 == k).all()
        counts.append(n)
    counts = np.array(counts)
    assert len({tuple(c) for c in counts}) > 10  # the split varies from batch to batch ...
    np.testing.assert_allclose(counts.mean(0), 30 / K, rtol=0.1)  # ... and is uniform on average
    strat = buf.sample(10, rng)
    assert "weight" not in strat and strat["obs"].shape == (K, 10, OBS)  # stratified: unchanged


def test_weighted_task_losses_are_the_mean_over_each_tasks_own_samples():
    """With uniform replay's weights, padding does not matter and each task's loss (and trunk gradient row) is the
    plain mean over its own samples."""
    ag = _agent("multihead")
    b = _filled_buffer().sample_uniform(17, np.random.default_rng(3))
    w = b["weight"]
    y = torch.randn(w.shape)
    G, heads, losses = ag.critic_task_grads(b["obs"] / 100, b["action"], y, w)
    junk = torch.where(w[..., None] > 0, b["obs"], torch.full_like(b["obs"], 1e3))
    G2, _, losses2 = ag.critic_task_grads(junk / 100, b["action"], torch.where(w > 0, y, 5.0), w)
    torch.testing.assert_close(G, G2)
    torch.testing.assert_close(losses, losses2)
    for k in range(K):
        real = w[k] > 0
        ref = _agent("multihead")
        Gk, _, lk = ref.critic_task_grads((b["obs"][k, real] / 100)[None].expand(K, -1, -1),
                                          b["action"][k, real][None].expand(K, -1, -1),
                                          y[k, real][None].expand(K, -1))  # fmt: skip
        torch.testing.assert_close(losses[k], lk[k])
        torch.testing.assert_close(G[k], Gk[k], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("agg", ["uw", "dwa", "famo", "si"])
def test_one_nan_batch_does_not_poison_a_loss_based_aggregator(agg):
    """Issue 15 item 1: a skipped update's non-finite losses never reach ``agg.step``; later updates stay finite."""
    ag = _agent(agg=agg)
    gen = torch.Generator().manual_seed(0)
    for t in range(6):
        b = _batch(t)
        if t == 3:
            b["reward"][1, 0] = float("nan")
        info = ag.update(b, gen)
        if t > 3:
            assert not info.results["critic"].skipped
    assert ag.n_skipped["critic"] == 1
    assert all(torch.isfinite(p).all() for p in ag.q1.parameters())
    assert all(torch.isfinite(p).all() for p in ag.actor.parameters())
