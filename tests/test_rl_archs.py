"""Architectures ``agent.arch=sm`` and ``care`` (and the registry): sizes equal to facebookresearch/mtrl's MT10
configs, routing/attention weights, per-task gradient routing, training with every aggregator, learning, resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch.func import vmap

from mtrl.agents import ARCHITECTURES, MultiTaskSAC, NetSpec, SACConfig, make_network
from mtrl.agents.archs import CareNet, SoftModularNet, TaskMLP, task_description_embeddings
from mtrl.aggregators import AGGREGATORS, make_aggregator
from mtrl.train import ConfigError, check_config, train
from tests.test_rl_train import IGBV2_FAST, TINY, assert_same, cfg_of, final_state, run

pytestmark = pytest.mark.usefixtures("one_thread")
NEW = ("sm", "care")
K, B, RAW, ACT = 3, 8, 5, 2
OBS = RAW + K  # observation + one-hot task id (as env.task_id=onehot)


def _obs(n: int = B, seed: int = 0) -> torch.Tensor:
    """``[K, n, OBS]`` observations whose last K entries are task k's one-hot id."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(K, n, OBS, generator=g)
    x[..., RAW:] = torch.eye(K)[:, None, :]
    return x


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    return {"obs": _obs(seed=seed), "action": torch.rand(K, B, ACT, generator=g) * 2 - 1,
            "reward": torch.randn(K, B, generator=g), "next_obs": _obs(seed=seed + 7),
            "terminated": (torch.rand(K, B, generator=g) < 0.2).float()}  # fmt: skip


def _agent(arch: str, mode: str = "vmap", agg: str = "ls", **kw) -> MultiTaskSAC:
    torch.manual_seed(0)
    cfg = SACConfig(hidden_dim=16, num_layers=2, arch=arch, per_task_grads=mode, **kw)
    return MultiTaskSAC(OBS, ACT, K, cfg, {"critic": make_aggregator(agg), "actor": make_aggregator(agg)})


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------------------ registry
def test_registry_holds_every_architecture_and_rejects_unknown_names():
    assert list(ARCHITECTURES) == ["multihead", "shared", "independent", "sm", "care"]
    spec = NetSpec(OBS, 4, OBS, K, 16, 2)
    assert isinstance(make_network("multihead", spec), TaskMLP)
    assert isinstance(make_network("sm", spec), SoftModularNet) and isinstance(make_network("care", spec), CareNet)
    with pytest.raises(ValueError, match="unknown architecture 'moe'; valid: multihead, shared, independent, sm, care"):
        make_network("moe", spec)
    with pytest.raises(ConfigError, match="valid: multihead, shared, independent, sm, care"):
        check_config(cfg_of(*TINY, "agent.arch=moe"))
    for arch in NEW:
        check_config(cfg_of(*TINY, f"agent.arch={arch}"))


def test_mlp_architectures_through_the_registry_are_the_old_task_mlps():
    for arch in ("multihead", "shared", "independent"):
        torch.manual_seed(0)
        new = make_network(arch, NetSpec(OBS, 4, OBS, K, 16, 2, init="xavier"))
        torch.manual_seed(0)
        old = TaskMLP(OBS, 4, 16, 2, K, arch, init="xavier")
        assert_same(new.state_dict(), old.state_dict())


# ------------------------------------------------------------------------- sizes = the reference's MT10 configs
def lin(d_in: int, d_out: int, n: int = 1) -> int:
    """Parameters of ``n`` linear layers (or mixture-of-experts ``Linear`` of n experts) ``d_in -> d_out``."""
    return n * (d_in * d_out + d_out)


def build_mlp(d_in: int, hidden: int, d_out: int, num_layers: int) -> int:
    """facebookresearch/mtrl ``agent_utils.build_mlp``: ``num_layers`` hidden layers, i.e. num_layers + 1 linears."""
    return lin(d_in, hidden) + lin(hidden, hidden, num_layers - 1) + lin(hidden, d_out)


# MT10 v3: 39-d observation + 10-d one-hot, 4-d action. The reference's sizes, from its YAMLs:
MT10_RAW, MT10_K, MT10_ACT = 39, 10, 4
HIDDEN = 400  # config/agent/components/metaworld_actor.yaml hidden_dim (critic: ${agent.actor.hidden_dim})
TE = 50  # metaworld_multitask.yaml task_encoder_cfg.model_cfg: embedding_dim = hidden_dim = output_dim = 50,
TE_LAYERS = 2  # ... num_layers 2
FEAT = 50  # agent.encoder_feature_dim (state_sac.yaml); encoder feedforward/moe: hidden_dim 50, num_layers 2
N_EXPERTS_SM = 4  # moe_cfg.num_experts (metaworld_multitask.yaml; the docs' SoftModularization command)
N_EXPERTS_CARE = 4  # agent.encoder.moe.num_experts=4 (the docs' CARE command)
ROBERTA = 768  # width of metadata/task_embedding/roberta_small/*.json rows


def _mt10_spec(out: int, critic: bool) -> NetSpec:
    obs = MT10_RAW + MT10_K
    return NetSpec(obs + MT10_ACT * critic, out, obs, MT10_K, HIDDEN, 3, init="xavier")


def test_sm_sizes_equal_the_reference_mt10_config():
    """Per network: the reference's task encoder (Embedding(10, 50) + build_mlp(50, 50, 50, 2)), feedforward
    encoder (build_mlp(39, 50, 50, 2)), [critic: obs_action_projection_layer Linear(50 + 4, 50)] and
    SoftModularizedMLP(num_experts=4, in=50, hidden=400, num_layers=2 as hard-coded in actor.py/critic.py):
    module layers Linear_4(50 -> 400), Linear_4(400 -> out), routing projection Linear(50, 400), W_d Linear(400, 16)."""
    task_encoder = MT10_K * TE + build_mlp(TE, TE, TE, TE_LAYERS)
    encoder = build_mlp(MT10_RAW, FEAT, FEAT, 2)
    E = N_EXPERTS_SM

    def smmlp(out: int) -> int:
        return lin(FEAT, HIDDEN, E) + lin(HIDDEN, out, E) + lin(FEAT, HIDDEN) + lin(HIDDEN, E * E)

    actor, q = make_network("sm", _mt10_spec(2 * MT10_ACT, False)), make_network("sm", _mt10_spec(1, True))
    assert _count(actor) == task_encoder + encoder + smmlp(2 * MT10_ACT) == 136498
    assert _count(q) == task_encoder + encoder + lin(FEAT + MT10_ACT, FEAT) + smmlp(1) == 128020
    assert _count(actor) - sum(p.numel() for p in actor.shared.values()) == MT10_K * TE  # per task: the embeddings
    x = torch.randn(MT10_K, 5, MT10_RAW + MT10_K)
    x[..., MT10_RAW:] = torch.eye(MT10_K)[:, None]
    out = vmap(actor.forward_one, in_dims=(None, 0, 0))(dict(actor.shared), dict(actor.task), x)
    assert out.shape == (MT10_K, 5, 2 * MT10_ACT)
    xa = torch.cat([x, torch.rand(MT10_K, 5, MT10_ACT)], -1)
    assert vmap(q.forward_one, in_dims=(None, 0, 0))(dict(q.shared), dict(q.task), xa).shape == (MT10_K, 5, 1)


def test_care_sizes_equal_the_reference_mt10_config():
    """Per network: the reference's TaskEncoder with pretrained embeddings (frozen 768-d rows, not trained;
    Linear(768, 100), Linear(100, 50), build_mlp(50, 50, 50, 2)), MixtureofExpertsEncoder (FeedForward of 4 experts,
    2 layers: 39 -> 50 -> 50; attention trunk build_mlp(50, 50, 4, 2)) and the actor / Q trunk
    build_mlp(50 + 50 [+ 4], 400, out, 3)."""
    task_encoder = lin(ROBERTA, 2 * TE) + lin(2 * TE, TE) + build_mlp(TE, TE, TE, TE_LAYERS)
    E = N_EXPERTS_CARE
    encoder = lin(MT10_RAW, FEAT, E) + lin(FEAT, FEAT, E) + build_mlp(TE, TE, E, 2)
    actor, q = make_network("care", _mt10_spec(2 * MT10_ACT, False)), make_network("care", _mt10_spec(1, True))
    assert _count(actor) == task_encoder + encoder + build_mlp(FEAT + TE, HIDDEN, 2 * MT10_ACT, 3) == 477512
    assert _count(q) == task_encoder + encoder + build_mlp(FEAT + TE + MT10_ACT, HIDDEN, 1, 3) == 476305
    assert len(actor.task) == 0  # nothing per task: every parameter is shared
    x = torch.randn(MT10_K, 5, MT10_RAW + MT10_K)
    x[..., MT10_RAW:] = torch.eye(MT10_K)[:, None]
    out = vmap(actor.forward_one, in_dims=(None, 0, 0))(dict(actor.shared), dict(actor.task), x)
    assert out.shape == (MT10_K, 5, 2 * MT10_ACT)


def test_care_embeddings_are_the_reference_package_data():
    from importlib import resources

    raw = json.loads(resources.files("mtrl.agents").joinpath("data/roberta_small_metaworld-mt50.json").read_text())
    assert len(raw) == 50 and all(len(v) == ROBERTA for v in raw.values())
    from mtrl.envs import MT10_TASKS

    emb = task_description_embeddings(list(MT10_TASKS), 10)
    assert emb.shape == (10, ROBERTA)
    for i, name in enumerate(MT10_TASKS):  # reach-v3 -> reach-v1's description
        torch.testing.assert_close(emb[i], torch.tensor(raw[name.rsplit("-v", 1)[0] + "-v1"]))
    with pytest.raises(ValueError, match="no task-description embedding"):
        task_description_embeddings(["not-a-task-v3"], 1)


# ------------------------------------------------------------------------------- routing and attention weights
def test_sm_routing_weights_are_distributions_that_depend_on_the_task():
    net = make_network("sm", NetSpec(OBS, 4, OBS, K, 16, 2))
    net3 = SoftModularNet(NetSpec(OBS, 4, OBS, K, 16, 2), sm_layers=4, sm_modules=3)
    x = _obs()
    x[1, :, :RAW] = x[0, :, :RAW]  # same observations for tasks 0 and 1
    for m, n_steps, E in ((net, 1, 4), (net3, 3, 3)):
        h, probs = vmap(m.routing, in_dims=(None, 0, 0))(dict(m.shared), dict(m.task), x)
        assert len(probs) == n_steps
        for p in probs:
            assert p.shape == (K, B, E, E) and (p >= 0).all()
            torch.testing.assert_close(p.sum(-1), torch.ones(K, B, E))
        assert not torch.allclose(probs[0][0], probs[0][1])  # same observation, other task: other routing
        assert vmap(m.forward_one, in_dims=(None, 0, 0))(dict(m.shared), dict(m.task), x).shape == (K, B, 4)


def test_care_attention_sums_to_one_and_depends_on_the_task_embedding():
    net = make_network("care", NetSpec(OBS, 4, OBS, K, 16, 2))
    sh = dict(net.shared)
    x = _obs()
    x[1, :, :RAW] = x[0, :, :RAW]
    z, att = vmap(net.context, in_dims=(None, 0))(sh, x)
    assert att.shape == (K, B, 4) and (att > 0).all()
    torch.testing.assert_close(att.sum(-1), torch.ones(K, B))
    assert torch.allclose(att[0, 0], att[0, 1])  # one task: one attention, whatever the observation
    assert not torch.allclose(att[0], att[1])  # another task's embedding: another attention
    net.roberta[0] = net.roberta[1]  # give task 0 task 1's description: task 0 now attends as task 1
    _, att2 = vmap(net.context, in_dims=(None, 0))(sh, x)
    torch.testing.assert_close(att2[0], att[1])
    torch.testing.assert_close(att2[2], att[2])


# ------------------------------------------------------------------------------------------ gradient routing
@pytest.mark.parametrize("arch", NEW)
@pytest.mark.parametrize("mode", ["vmap", "batched", "batched_in_groups"])
def test_vmap_per_task_grads_equal_k_backward_passes(arch, mode, monkeypatch):
    """The one vectorised pass (``vmap``, or the default ``batched``: one backward through per-task expanded views)
    gives the same K rows for the shared parameters (and per-task gradients) as K backward passes
    (``per_task_grads=loop``); ``batched_in_groups``: SM's task-batched forward split into groups of one task (what
    it does at MT50 size to stay in the CPU cache)."""
    if mode == "batched_in_groups":
        if arch != "sm":
            pytest.skip("only sm groups its tasks")
        from mtrl.agents.archs import _sm

        monkeypatch.setattr(_sm, "GROUP_BYTES", 1)
    b = _batch()
    y, noise, alpha = torch.randn(K, B), torch.randn(K, B, ACT), torch.tensor([0.5, 1.0, 2.0])
    fast, slow = _agent(arch, mode.replace("_in_groups", "")), _agent(arch, "loop")
    for name in ("critic", "actor"):
        if name == "critic":
            (Gf, hf, lf), (Gs, hs, ls_) = (a.critic_task_grads(b["obs"], b["action"], y) for a in (fast, slow))
        else:
            (Gf, hf, lf, _), (Gs, hs, ls_, _) = (a.actor_task_grads(b["obs"], noise, alpha) for a in (fast, slow))
        n_shared = sum(p.numel() for p in (fast.actor if name == "actor" else fast.q1).shared.values())
        assert Gf.shape == Gs.shape == (K, n_shared * (2 if name == "critic" else 1))
        torch.testing.assert_close(Gf, Gs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lf, ls_, atol=1e-6, rtol=1e-6)
        assert len(hf) == len(hs) == {"sm": 2 if name == "critic" else 1, "care": 0}[arch]  # sm: task embeddings
        for a, c in zip(hf, hs):
            torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
            assert (a.abs().sum(-1) > 0).all()
        assert not torch.allclose(Gf[0], Gf[1])  # rows really are per task


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("critic", [False, True])
def test_sm_forward_equals_the_module_by_module_definition(layers, critic):
    """The trunk is computed sample-major with the last layer applied before the mixing (one GEMM each, for speed);
    it equals the definition step by step: module j of layer l gets ``Σ_k P[b, j, k] y_k``, applies its own linear
    layer (ReLU between layers), and the last layer's modules are averaged (reference: ``SoftModularizedMLP``)."""
    from mtrl.agents.archs._base import linear

    torch.manual_seed(0)
    spec = NetSpec(OBS + 2 * critic, 1 if critic else 2 * ACT, OBS, K, 16, 2, init="xavier")
    net = SoftModularNet(spec, sm_layers=layers).double()
    x = torch.randn(B, spec.in_dim, dtype=torch.float64)
    shared, task = dict(net.shared), {k: v[1] for k, v in net.task.items()}
    h, probs = net.routing(shared, task, x)
    y = torch.relu(linear(shared, "mod0", h))  # [E, B, H]
    for l in range(1, layers):
        y = torch.stack([sum(probs[l - 1][:, j, k, None] * y[k] for k in range(net.E)) for j in range(net.E)])
        y = linear(shared, f"mod{l}", y)
        y = torch.relu(y) if l < layers - 1 else y
    torch.testing.assert_close(net.forward_one(shared, task, x), y.mean(dim=0), rtol=1e-12, atol=1e-12)


def test_sm_task_embedding_gets_only_its_own_tasks_gradient():
    ag = _agent("sm")
    b = _batch()
    y = torch.randn(K, B)
    _, g_tk, _ = ag.critic_task_grads(b["obs"], b["action"], y)
    y2 = y.clone()
    y2[2] += 5.0  # task 2's targets change: only task 2's embedding gradient may change
    _, g_tk2, _ = ag.critic_task_grads(b["obs"], b["action"], y2)
    for g, g2 in zip(g_tk, g_tk2):
        torch.testing.assert_close(g[:2], g2[:2])
        assert not torch.allclose(g[2], g2[2])


# -------------------------------------------------------------------------------------------- end to end (fake)
UPDATES = 12  # igbv2 (IGBV2_FAST) starts its own SAC's updates at its 10th call


@pytest.mark.parametrize("arch", NEW)
@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_every_aggregator_trains_with_each_architecture(arch, name):
    """Each aggregator on each new architecture, in the agent the training entry point builds from the config
    (``build_agent``): every update sends the architecture's per-task gradients through the aggregator (critic and
    actor), moves the networks and keeps them finite, and the agent's state (the aggregator's included) round-trips
    through a checkpoint. The training loop itself runs with both architectures in the resume and entry-point tests
    (and with every aggregator in ``tests/test_rl_train.py``); this used to be 40 short training runs."""
    import io

    from mtrl.train import build_agent

    extra = IGBV2_FAST if name == "igbv2" else ()
    cfg = cfg_of(*TINY, f"agent.aggregator={name}", f"agent.arch={arch}", *extra)
    torch.manual_seed(0)
    agent = build_agent(cfg, OBS, ACT, K, torch.device("cpu"))
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    for i in range(UPDATES):
        agent.update(_batch(i), g)
    assert agent.n_updates == UPDATES
    for loss in ("critic", "actor"):
        assert agent.aggregators[loss].n_calls == UPDATES and agent.aggregators[loss].name == name
    after = agent.actor.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for net in ("actor", "q1", "q2"):
        assert all(torch.isfinite(v).all() for v in getattr(agent, net).state_dict().values())
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    other = build_agent(cfg, OBS, ACT, K, torch.device("cpu"))
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert_same(other.state_dict(), agent.state_dict())


@pytest.mark.parametrize("arch", NEW)
def test_resume_matches_an_uninterrupted_run_bit_for_bit(tmp_path, arch):
    n = 40  # warm-up 10: the split at 20 has updates on both sides (and an evaluation after it, at 40)
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ("agent.aggregator=pcgrad", f"agent.arch={arch}")
    run(straight, *common, f"train.steps_per_task={n}")
    run(split, *common, f"train.steps_per_task={n // 2}")
    run(split, *common, f"train.steps_per_task={n}", "resume=true")
    sa, sb = final_state(straight), final_state(split)
    assert sa["loop"]["step"] == sb["loop"]["step"] == n
    assert_same(sa["agent"], sb["agent"])
    assert_same(sa["buffer"], sb["buffer"])
    assert_same(sa["rng"], sb["rng"])
    with pytest.raises(Exception, match="arch"):  # another architecture's checkpoint is refused
        run(split, "agent.aggregator=pcgrad", "agent.arch=multihead", f"train.steps_per_task={n + 10}", "resume=true")


@pytest.mark.parametrize("arch", NEW)
def test_reference_presets_of_the_architectures_compose_and_run(tmp_path, arch):
    """``experiment=sm_mt10`` / ``care_mt10``: facebookresearch/mtrl's MT10 commands for the two architectures
    (its docs' baseline.rst) = the published run's settings (experiment=mt10_reference) with the architecture, per-task
    α, the task id carried as a one-hot, no gradient manipulation; they run (fake env, small)."""
    cfg = cfg_of(f"experiment={arch}_mt10")
    check_config(cfg)
    e, a, t = cfg.env, cfg.agent, cfg.train
    assert (e.name, e.task_id, e.eval_episodes, e.max_episode_steps, e.fixed_goal, e.normalize_reward) == (
        "mt10_legacy", "onehot", 1, 150, True, True)  # fmt: skip
    assert (a.arch, a.alpha, list(a.aggregate_on), a.aggregator, a.init, a.replay, a.batch_size) == (
        arch, "per_task", ["critic", "actor"], "ls", "xavier", "uniform", 1280)  # fmt: skip
    assert (t.steps_per_task, t.warmup_steps_per_task, t.warmup_updates, t.eval_every) == (
        2_000_000, 1500, 1500, 30_000)  # fmt: skip
    small = ("env=fake", "env.task_id=onehot", "agent.batch_size=24", "agent.hidden_dim=16", "train.warmup_updates=5")
    out = run(tmp_path, f"experiment={arch}_mt10", *small, "train.eval_every=40", "train.steps_per_task=60")
    assert out["step"] == 60
    state = final_state(tmp_path)
    assert state["agent"]["log_alpha"].shape == (3,) and state["agent"]["n_updates"] == 5 + 50


LEARN = {"sm": (2500, 250), "care": (4500, 500)}  # steps per task, eval every: measured budgets, see the docstring


@pytest.mark.slow
@pytest.mark.parametrize("arch", NEW)
def test_fake_env_learning_improves(tmp_path, arch):
    """As tests/test_rl_train.py's learning test, with each new architecture and the reference's initialisation
    (``agent.init=xavier``). Both identify the task slowly at first: SM only through its routing weights (near
    uniform at initialisation), CARE only through the RoBERTa description embeddings, which are nearly parallel
    (cosine 0.999 between MT10 tasks). Measured here (seed 1, evaluation every 500 steps): SM success 0 up to 1,500
    steps, 0.8 at 2,000, 1.0 from 2,500; CARE 0 up to 3,000 (0.1 once), 0.5 at 3,500-4,000, 1.0 at 4,500-5,000. With
    torch's default initialisation neither learned within 2,500 steps (CARE 0 throughout)."""
    steps, every = LEARN[arch]
    run(tmp_path, f"agent.arch={arch}", "agent.init=xavier", "env.num_tasks=2", "agent.hidden_dim=64",
        "agent.num_layers=2", "agent.batch_size_per_task=32", "train.warmup_steps_per_task=200",
        f"train.steps_per_task={steps}", f"train.eval_every={every}", "env.eval_episodes=5",
        "agent.aggregator=imgrad", "train.log_every=500")  # fmt: skip
    success = [json.loads(x)["success_rate"] for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert len(success) == steps // every
    assert sum(success[:3]) / 3 <= 0.2 and sum(success[-2:]) / 2 >= 0.4, success


def test_train_entry_point_builds_care_with_the_env_task_names(tmp_path):
    cfg = cfg_of(*TINY, "agent.arch=care", "train.steps_per_task=20")
    train(cfg, tmp_path)
    emb = task_description_embeddings([f"fake-{k}" for k in range(3)], 3)
    from mtrl.train import build_agent

    ag = build_agent(cfg, 2 + 3, 2, 3, torch.device("cpu"))
    torch.testing.assert_close(ag.actor.roberta, emb)


# ------------------------------------------------------------------------------------------------------- MT50
def test_mt50_tasks_are_metaworlds_mt50_order_and_have_care_embeddings():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    from mtrl.envs import MT50_TASKS, PROTOCOLS, task_names

    cfg = cfg_of("env=mt50", "agent.arch=care")
    check_config(cfg)
    assert "mt50" in PROTOCOLS and task_names(cfg.env) == list(MT50_TASKS) == list(ALL_V3_ENVIRONMENTS)
    assert cfg.env.task_id == "onehot" and cfg.env.max_episode_steps == 500 and not cfg.env.fixed_goal
    emb = task_description_embeddings(list(MT50_TASKS), 50)
    assert emb.shape == (50, ROBERTA) and len({tuple(r.tolist()) for r in emb}) == 50


@pytest.mark.slow
def test_real_mt50_builds_and_evaluates_on_the_training_goals():
    """Real MT50 (one training and one evaluation build): 50 sub-envs in MT50 order, 89-d observations, and every
    evaluation episode's goal is one of its task's training goals (as mt10)."""
    from mtrl.envs import MT50_TASKS, make_envs
    from mtrl.envs._metaworld import sub_envs
    from mtrl.train import make_eval_envs
    from tests.test_rl_envs import _env_cfg, _evaluation_goals, _training_goals

    cfg = _env_cfg("mt50")
    train_envs = make_envs(cfg, 1)
    eval_envs, eval_seed = make_eval_envs(cfg, 1, train_envs)
    try:
        assert train_envs.num_envs == 50 and train_envs.single_observation_space.shape == (89,)
        assert [s.unwrapped.__class__.__name__ for s in sub_envs(train_envs)] == [
            s.unwrapped.__class__.__name__ for s in sub_envs(eval_envs)]  # fmt: skip
        assert all(s.get_wrapper_attr("tasks")[0].env_name == n for s, n in zip(sub_envs(train_envs), MT50_TASKS))
        train_goals = _training_goals(train_envs)
        eval_goals = _evaluation_goals(eval_envs, eval_seed, episodes=3)
    finally:
        train_envs.close()
        eval_envs.close()
    for k, (tr, ev) in enumerate(zip(train_goals, eval_goals)):
        assert ev <= tr, f"task {MT50_TASKS[k]}: evaluation goals {ev - tr} are not training goals"
