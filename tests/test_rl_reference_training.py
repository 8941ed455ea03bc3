"""SM and CARE trained as facebookresearch/mtrl trains them (docs/reference-sm-care.md), and ``agent.log_std``.

Each option is checked for what it must change and for what it must leave alone: which parameters are one object,
which optimiser holds what, which loss reaches which parameter, the Polyak rates, the target's task encoder, the
frozen attention, the presets' values, a checkpoint round trip, and the clear errors of impossible settings.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from mtrl._paths import config_dir
from mtrl.agents import MultiTaskSAC, SACConfig
from mtrl.agents.losses import policy_one
from mtrl.aggregators import make_aggregator
from mtrl.train import ConfigError, check_config
from tests.test_rl_train import TINY, cfg_of

pytestmark = pytest.mark.usefixtures("one_thread")
K, B, RAW, ACT = 3, 8, 5, 2
OBS = RAW + K
REFERENCE = {"sm": dict(encoders="reference", encoder_tau=0.05, target_task_encoder="online"),
             "care": dict(encoders="reference", encoder_tau=0.05, target_task_encoder="online",
                          actor_attention="frozen")}  # fmt: skip
TIED_Q = ("encoder", "attention", "task_encoder")
TIED_ACTOR = ("encoder", "task_encoder")


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def obs() -> torch.Tensor:
        x = torch.randn(K, B, OBS, generator=g)
        x[..., RAW:] = torch.eye(K)[:, None, :]
        return x

    return {"obs": obs(), "action": torch.rand(K, B, ACT, generator=g) * 2 - 1,
            "reward": torch.randn(K, B, generator=g), "next_obs": obs(), "terminated": torch.zeros(K, B)}  # fmt: skip


def _agent(arch: str, agg: str = "ls", **kw) -> MultiTaskSAC:
    torch.manual_seed(0)
    cfg = SACConfig(hidden_dim=16, num_layers=2, arch=arch, diagnostics_every=2, **kw)
    return MultiTaskSAC(OBS, ACT, K, cfg, {"critic": make_aggregator(agg), "actor": make_aggregator(agg)})


def _named(net: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {**net.shared, **net.task}


def _opt_ids(opt: torch.optim.Optimizer | None) -> list[int]:
    return [] if opt is None else [id(p) for g in opt.param_groups for p in g["params"]]


# ------------------------------------------------------------------------------------------ encoders=reference
@pytest.mark.parametrize("arch", ["sm", "care"])
def test_reference_encoders_are_one_object_and_each_parameter_has_one_optimiser(arch):
    ag = _agent(arch, **REFERENCE[arch])
    q1, q2, actor = _named(ag.q1), _named(ag.q2), _named(ag.actor)
    group = ag.q1.param_group
    assert any(group(k) == "encoder" for k in q1) and any(group(k) == "task_encoder" for k in q1)
    for k in q1:
        assert (q2[k] is q1[k]) == (group(k) in TIED_Q), k
        if k in actor:  # (sm: the critic's obs-action projection has no actor counterpart)
            assert (actor[k] is q1[k]) == (group(k) in TIED_ACTOR), k
    # the targets keep the sharing (one deepcopy of both critics)
    t1, t2 = _named(ag.q1_target), _named(ag.q2_target)
    assert all((t2[k] is t1[k]) == (group(k) in TIED_Q) for k in t1)
    # every trainable parameter in exactly one optimiser; the actor's holds only its own trunk (and, sm, routing)
    actor_ids, critic_ids, te_ids = _opt_ids(ag.actor_opt), _opt_ids(ag.critic_opt), _opt_ids(ag.task_encoder_opt)
    everything = {id(p) for net in (ag.actor, ag.q1, ag.q2) for p in net.parameters()}
    frozen = {id(p) for k, p in actor.items() if group(k) == "attention"} if arch == "care" else set()
    assert sorted(actor_ids + critic_ids + te_ids) == sorted(everything - frozen)
    assert {id(actor[k]) for k in actor if group(k) == "trunk"} == set(actor_ids)
    assert set(te_ids) == {id(q1[k]) for k in q1 if group(k) == "task_encoder"}


@pytest.mark.parametrize("arch", ["sm", "care"])
def test_reference_encoders_get_the_critic_loss_and_never_the_actor_loss(arch):
    """The shared encoder and task encoder: gradients from the critic loss (both Q functions), none from the actor
    loss; the actor's trunk: the actor loss."""
    ag = _agent(arch, **REFERENCE[arch])
    b = _batch()
    alpha = ag.alphas()
    noise = torch.randn(K, B, ACT, generator=torch.Generator().manual_seed(3))
    target = ag.critic_target(b["reward"], b["next_obs"], b["terminated"], noise, alpha)
    c_sh, c_tk = ag._critic_params()
    assert set(c_sh) == {"q1", "q2", "enc"}
    closs = ag._critic_losses(c_sh, c_tk, b["obs"], b["action"], target, ag.b_critic, None)
    enc = [*c_sh["enc"].values(), *c_tk["enc"].values()]
    g = torch.autograd.grad(closs.sum(), enc)
    assert all(float(x.abs().sum()) > 0 for x in g)
    # both Q losses reach the shared encoder: its gradient is the sum of the two Q functions' parts
    q1_only = ag._critic_losses({**c_sh, "q2": {k: v.detach() for k, v in c_sh["q2"].items()}}, c_tk, b["obs"],
                                b["action"], target, ag.b_critic, None)  # fmt: skip
    assert torch.allclose(q1_only, closs)
    a_sh, a_tk = ag._actor_params()
    cd = [{k: {n: t.detach() for n, t in v.items()} for k, v in d.items()} for d in (c_sh, c_tk)]
    aloss, _ = ag._actor_losses(a_sh, a_tk, cd[0], cd[1], b["obs"], noise, alpha, ag.b_actor, ag.b_critic, None)
    g_enc = torch.autograd.grad(aloss.sum(), enc, allow_unused=True, retain_graph=True)
    assert all(x is None for x in g_enc)
    g_own = torch.autograd.grad(aloss.sum(), list(a_sh.values()))
    assert all(float(x.abs().sum()) > 0 for x in g_own)


@pytest.mark.parametrize("arch", ["sm", "care"])
def test_reference_update_moves_the_shared_encoders_and_keeps_them_tied(arch):
    ag = _agent(arch, **REFERENCE[arch])
    before = {k: p.detach().clone() for k, p in _named(ag.q1).items()}
    for i in range(3):
        ag.update(_batch(i))
    q1, q2, actor = _named(ag.q1), _named(ag.q2), _named(ag.actor)
    for k, p in q1.items():
        assert not torch.equal(p, before[k]), k  # every critic parameter learns (task encoder included)
        if ag.q1.param_group(k) in TIED_ACTOR:
            assert actor[k] is p and q2[k] is p
    assert ag.task_encoder_opt.state  # the task encoder's own Adam has stepped


def test_reference_options_need_an_architecture_with_encoders_and_batched_gradients():
    with pytest.raises(ValueError, match="agent.encoders=reference needs agent.arch=sm or care"):
        _agent("multihead", encoders="reference")
    with pytest.raises(ValueError, match="agent.actor_attention=frozen needs agent.arch=care"):
        _agent("sm", actor_attention="frozen")
    with pytest.raises(ValueError, match="need agent.per_task_grads=batched"):
        _agent("sm", encoders="reference", per_task_grads="vmap")
    with pytest.raises(ValueError, match="agent.encoders must be one of separate, reference"):
        _agent("sm", encoders="tied")
    with pytest.raises(ValueError, match="agent.encoder_tau must be null or in"):
        _agent("sm", encoder_tau=1.5)
    with pytest.raises(ConfigError, match="agent.target_task_encoder must be one of target, online"):
        check_config(cfg_of(*TINY, "agent.arch=sm", "agent.target_task_encoder=lagging"))
    with pytest.raises(ConfigError, match="agent.log_std must be one of tanh, clamp"):
        check_config(cfg_of(*TINY, "agent.log_std=clip"))


@pytest.mark.parametrize("arch", ["sm", "care"])
def test_reference_checkpoint_round_trip_keeps_ties_and_the_task_encoder_optimiser(arch):
    ag = _agent(arch, **REFERENCE[arch])
    for i in range(2):
        ag.update(_batch(i), torch.Generator().manual_seed(i))
    state = copy.deepcopy(ag.state_dict())
    assert "task_encoder_opt" in state
    other = _agent(arch, **REFERENCE[arch])
    other.load_state_dict(state)
    for i in (5, 6):
        ag.update(_batch(i), torch.Generator().manual_seed(i))
        other.update(_batch(i), torch.Generator().manual_seed(i))
    for a, b in zip(ag.q1.parameters(), other.q1.parameters()):
        assert torch.equal(a, b)
    assert _named(other.actor)["te0_w"] is _named(other.q1)["te0_w"]


# ------------------------------------------------------------------------------------------ the target critic
@pytest.mark.parametrize("arch", ["sm", "care", "multihead"])
def test_encoder_tau_averages_the_target_encoder_at_its_own_rate(arch):
    """target ← target + rate (online − target): the encoder groups at agent.encoder_tau, the rest at agent.tau."""
    ag = _agent(arch, tau=0.01, encoder_tau=0.3)
    t_before = {k: p.clone() for k, p in _named(ag.q1_target).items()}
    ag.update(_batch())
    online, target = _named(ag.q1), _named(ag.q1_target)
    group = getattr(ag.q1, "param_group", lambda k: "trunk")
    for k, t in target.items():
        rate = 0.3 if group(k) in ("encoder", "attention") else 0.01
        torch.testing.assert_close(t, t_before[k] + rate * (online[k] - t_before[k]), rtol=1e-5, atol=1e-6)
    assert arch == "multihead" or any(group(k) == "encoder" for k in target)


@pytest.mark.parametrize("arch", ["sm", "care"])
@pytest.mark.parametrize("encoders", ["separate", "reference"])
def test_online_target_task_encoder_is_the_online_one(arch, encoders):
    ag = _agent(arch, target_task_encoder="online", encoders=encoders)
    t_sh, t_tk = ag._critic_params(target=True)
    online = _named(ag.q1)
    views = [*t_sh.values(), *t_tk.values()]
    te = {k: v for view in views for k, v in view.items() if ag.q1.param_group(k) == "task_encoder"}
    assert te and all(v is online[k] or v is _named(ag.q2)[k] for k, v in te.items())
    lagging = _agent(arch, encoders=encoders)
    lt_sh, lt_tk = lagging._critic_params(target=True)
    tgt = {id(p) for p in [*lagging.q1_target.parameters(), *lagging.q2_target.parameters()]}
    assert all(id(v) in tgt for view in [*lt_sh.values(), *lt_tk.values()] for v in view.values())


# ------------------------------------------------------------------------------------------ CARE's actor attention
@pytest.mark.parametrize("mode", ["frozen", "train"])
def test_care_actor_attention_frozen_stays_at_its_initialisation(mode):
    ag = _agent("care", actor_attention=mode)
    att = {k: p.detach().clone() for k, p in _named(ag.actor).items() if k.startswith("att")}
    trunk = {k: p.detach().clone() for k, p in _named(ag.actor).items() if k.startswith("trunk")}
    for i in range(3):
        ag.update(_batch(i))
    now = _named(ag.actor)
    assert all(torch.equal(now[k], v) == (mode == "frozen") for k, v in att.items())
    assert not any(torch.equal(now[k], v) for k, v in trunk.items())


# ------------------------------------------------------------------------------------------ defaults unchanged
@pytest.mark.parametrize("arch", ["sm", "care", "multihead"])
def test_defaults_are_mtrls_own_training(arch):
    """Default options: every network owns its parameters, the target copies everything at agent.tau, the actor's
    optimiser holds all the actor's parameters; explicit defaults give the same update bit for bit."""
    ag = _agent(arch)
    assert not any(p is q for p in ag.q1.parameters() for q in [*ag.q2.parameters(), *ag.actor.parameters()])
    assert ag.task_encoder_opt is None and [r for *_, r in ag._polyak] == [ag.cfg.tau]
    assert set(_opt_ids(ag.actor_opt)) == {id(p) for p in ag.actor.parameters()}
    explicit = _agent(
        arch,
        encoders="separate",
        encoder_tau=None,
        target_task_encoder="target",
        log_std="clamp",
        alpha_loss="log_alpha",
    )
    for i in range(2):
        ag.update(_batch(i), torch.Generator().manual_seed(i))
        explicit.update(_batch(i), torch.Generator().manual_seed(i))
    for a, b in zip(ag.state_dict()["q1_target"].values(), explicit.state_dict()["q1_target"].values()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ agent.log_std
def test_log_std_tanh_and_clamp_at_a_fresh_network():
    """A raw output of 0: tanh gives log σ = −20 + 11 = −9 (σ ≈ 1.2e-4, fb/mtrl); clamp gives 0 (σ = 1, SB3);
    outside [−20, 2] clamp saturates, tanh approaches the bounds."""
    noise = torch.ones(4, 1)

    def policy(raw: float, mode: str) -> torch.Tensor:
        net = lambda sh, tk, x: torch.cat([torch.zeros(x.shape[0], 1), torch.full((x.shape[0], 1), raw)], -1)  # noqa: E731
        return policy_one({}, {}, torch.zeros(4, 3), noise, net, log_std=mode)

    cases = ((0.0, -9.0, 0.0), (5.0, -20 + 11 * (math.tanh(5.0) + 1), 2.0), (-30.0, -20.0, -20.0))
    for raw, tanh_ls, clamp_ls in cases:
        for mode, ls in (("tanh", tanh_ls), ("clamp", clamp_ls)):
            action, logp, det = policy(raw, mode)
            u = math.exp(ls)  # mean 0, noise 1: u = σ
            assert torch.allclose(action, torch.full_like(action, math.tanh(u)), atol=1e-6)
            expected = -0.5 - ls - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(u) ** 2 + 1e-30)
            assert torch.allclose(logp, torch.full_like(logp, expected), rtol=1e-4, atol=1e-4), (raw, mode)
            assert torch.equal(det, torch.zeros_like(det))


def test_log_std_reaches_every_policy_evaluation():
    tanh, clamp = _agent("multihead", log_std="tanh"), _agent("multihead", log_std="clamp")
    obs = _batch()["obs"][:, 0].numpy()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    # a fresh network (raw log σ outputs within about ±1): tanh's σ ≤ e^-3.9, clamp's about 1
    spread_tanh = abs(tanh.act(obs, g1) - tanh.act(obs, deterministic=True)).max()
    spread_clamp = abs(clamp.act(obs, g2) - clamp.act(obs, deterministic=True)).max()
    assert 5 * spread_tanh < spread_clamp
    i1, i2 = tanh.update(_batch()), clamp.update(_batch())
    assert i1.metrics["entropy"] < 0 < i2.metrics["entropy"]  # −E[log π]: σ ≈ 1e-4 vs σ ≈ 1


# ------------------------------------------------------------------------------------------ agent.tanh_correction
def test_tanh_correction_capped_is_the_references_and_sb3s_and_exact_is_unbounded():
    """log π of one action dimension at mean μ, σ = 1, noise 0 (u = μ), by hand: Gaussian term −½ log 2π; tanh term
    fb/mtrl ``log(relu(1 − a²) + 1e-6)`` and SB3 ``log(1 − a² + 1e-6)`` for ``capped`` (in float32, ``a = tanh u``
    rounds to 1 from u ≈ 9, so the term stops at log 1e-6), the exact ``log(1 − tanh²u)`` for ``exact``. The
    gradient of log π in μ: ``2 tanh u`` → ±2 for exact, → 0 for capped as the action saturates."""
    def policy(mu: float, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor([[mu]], requires_grad=True)
        net = lambda sh, tk, x: torch.cat([mean.expand(x.shape[0], 1), torch.zeros(x.shape[0], 1)], -1)  # noqa: E731
        _, logp, _ = policy_one({}, {}, torch.zeros(1, 3), torch.zeros(1, 1), net, log_std="clamp",
                                tanh_correction=mode)  # fmt: skip
        (g,) = torch.autograd.grad(logp.sum(), mean)
        return logp.detach(), g

    gauss = -0.5 * math.log(2 * math.pi)
    for mu in (0.0, 0.5, -2.0, 4.0, 12.0, -30.0):
        a = torch.tanh(torch.tensor(mu))  # float32, as both references compute it
        sb3 = gauss - torch.log(1 - a**2 + 1e-6).item()
        fb = gauss - torch.log(torch.relu(1 - a.pow(2)) + 1e-6).item()
        capped, g_capped = policy(mu, "capped")
        exact, g_exact = policy(mu, "exact")
        assert capped.item() == pytest.approx(sb3, rel=1e-6) and capped.item() == pytest.approx(fb, rel=1e-6)
        exact_by_hand = gauss - (2 * (math.log(2) - abs(mu) - math.log1p(math.exp(-2 * abs(mu)))))
        assert exact.item() == pytest.approx(exact_by_hand, rel=1e-5, abs=1e-5)
        assert g_exact.item() == pytest.approx(2 * math.tanh(mu), abs=1e-5)
        if abs(mu) < 1:  # the 1e-6 changes nothing away from the bounds
            assert capped.item() == pytest.approx(exact.item(), abs=1e-5)
    assert policy(12.0, "capped")[0].item() == pytest.approx(gauss - math.log(1e-6), rel=1e-6)  # the cap
    assert policy(12.0, "exact")[0].item() > gauss + 20  # unbounded: 2|u| − 2 log 2
    assert policy(12.0, "capped")[1].item() == 0.0 and policy(-30.0, "capped")[1].item() == 0.0
    assert policy(12.0, "exact")[1].item() == pytest.approx(2.0, abs=1e-6)


def test_tanh_correction_reaches_the_actor_loss_and_is_checked():
    """Same weights, batch and noise, with the actor's outputs scaled up so that its actions saturate: log π is far
    higher under ``exact`` (its tanh term has no floor), in the actor loss (the update's entropy) and in the target
    (the critic's TD target carries −α log π of the next action, so its loss grows); an unknown value is one clear
    error."""
    ags = {m: _agent("multihead", tanh_correction=m) for m in ("exact", "capped")}
    for ag in ags.values():
        with torch.no_grad():
            for p in ag.actor.parameters():
                p.mul_(30.0)
    infos = {m: ag.update(_batch(), torch.Generator().manual_seed(0)) for m, ag in ags.items()}
    exact, capped = infos["exact"].metrics, infos["capped"].metrics
    assert exact["entropy"] < capped["entropy"] - 1.0  # −E[log π]: saturation is penalised without bound
    assert exact["critic_loss"] > 10 * capped["critic_loss"]
    with pytest.raises(ValueError, match="agent.tanh_correction must be one of exact, capped"):
        _agent("multihead", tanh_correction="eps")
    with pytest.raises(ConfigError, match="agent.tanh_correction must be one of exact, capped"):
        check_config(cfg_of(*TINY, "agent.tanh_correction=clip"))


# ------------------------------------------------------------------------------------------ agent.alpha_loss
@pytest.mark.parametrize("alpha", ["per_task", "shared"])
def test_alpha_loss_forms_and_their_gradients(alpha):
    """``alpha``: L = −α (log π + H̄), so ∂L/∂log α = −α (log π + H̄) (fb/mtrl); ``log_alpha``: L = −log α (log π + H̄),
    ∂L/∂log α = −(log π + H̄) (SB3). Checked by hand at log α = log 0.3, for the per-task and the shared α."""
    kw = {"alpha": alpha, "init_alpha": 0.3}
    ours, sb3 = _agent("multihead", alpha_loss="alpha", **kw), _agent("multihead", alpha_loss="log_alpha", **kw)
    logp = torch.tensor([-1.0, 0.5, 2.0])
    h = ours.target_entropy  # −|A| = −2
    for ag, factor, value in ((ours, 0.3, 0.3), (sb3, 1.0, math.log(0.3))):
        losses = ag._alpha_losses(logp)
        torch.testing.assert_close(losses, -value * (logp + h))
        (grad,) = torch.autograd.grad(losses.sum(), ag.log_alpha)
        expected = -factor * (logp + h)
        torch.testing.assert_close(grad, expected if alpha == "per_task" else expected.sum().reshape(1))


def test_alpha_loss_changes_only_the_temperature_step():
    """Two updates from the same weights: the critic and the actor (which read α before its step) are the same;
    the temperature moves the same at Adam's first step (±lr whatever the gradient's scale) and differently once
    Adam has seen α at two sizes: here α is set from 0.05 to 0.001 between the updates (in training α changes that
    much over Adam's memory of about 1,000 steps)."""
    ours, sb3 = (
        _agent("multihead", alpha_loss="alpha", init_alpha=0.05),
        _agent("multihead", alpha_loss="log_alpha", init_alpha=0.05),
    )
    for t in range(2):
        ours.update(_batch(t), torch.Generator().manual_seed(t))
        sb3.update(_batch(t), torch.Generator().manual_seed(t))
        if t == 0:
            torch.testing.assert_close(ours.log_alpha, sb3.log_alpha)
            with torch.no_grad():
                ours.log_alpha.fill_(math.log(1e-3))
                sb3.log_alpha.fill_(math.log(1e-3))
    for net in ("actor", "q1", "q2"):
        for a, b in zip(getattr(ours, net).parameters(), getattr(sb3, net).parameters()):
            torch.testing.assert_close(a, b)
    assert not torch.allclose(ours.log_alpha, sb3.log_alpha, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="agent.alpha_loss must be one of alpha, log_alpha"):
        _agent("multihead", alpha_loss="exp")
    with pytest.raises(ConfigError, match="agent.alpha_loss"):
        check_config(cfg_of(*TINY, "agent.alpha_loss=log"))


# ------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("arch", ["sm", "care"])
def test_reference_presets_pin_the_reference_values(arch):
    """``experiment=sm_mt10`` / ``care_mt10``: the reference's sizes and rates (config/agent/state_sac.yaml,
    components/metaworld_actor.yaml, optimizers/metaworld_*.yaml) and its training of the encoders."""
    a = cfg_of(f"experiment={arch}_mt10").agent
    assert (a.hidden_dim, a.num_layers, a.lr, a.alpha_lr, a.gamma, a.tau, a.init_alpha) == (
        400, 3, 3e-4, 3e-4, 0.99, 0.005, 1.0)  # fmt: skip
    assert (a.encoders, a.encoder_tau, a.target_task_encoder, a.log_std, a.alpha_loss, a.tanh_correction) == (
        "reference", 0.05, "online", "tanh", "alpha", "capped")  # fmt: skip
    assert a.actor_attention == ("frozen" if arch == "care" else "train")
    check_config(cfg_of(f"experiment={arch}_mt10"))


def test_plain_config_keeps_mtrls_own_training():
    a = cfg_of(*TINY).agent
    assert (a.encoders, a.encoder_tau, a.target_task_encoder, a.actor_attention) == (
        "separate", None, "target", "train")  # fmt: skip
    assert (a.log_std, a.alpha_loss) == (SACConfig.log_std, SACConfig.alpha_loss) == ("clamp", "log_alpha")
    m = cfg_of("experiment=mt10_reference").agent
    assert (m.hidden_dim, m.num_layers, m.lr, m.alpha_lr, m.gamma, m.tau, m.init_alpha) == (
        400, 3, 3e-4, 3e-4, 0.99, 0.005, 1.0)  # fmt: skip


@pytest.mark.parametrize("preset", sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml")))
def test_published_presets_keep_the_reference_sac_and_the_others_sb3s(preset):
    """Plain runs learn with SB3's log-σ clamp and temperature loss (docs/parity.md: faster on drawer-close and
    window-open); every preset that reproduces a published run (mt10_reference and those built on it) keeps the
    reference's tanh squashing and α loss, which produced the published numbers."""
    cfg = cfg_of(f"experiment={preset}")
    published = preset == "mt10_reference" or "mt10_reference" in (Path(config_dir()) / "experiment" / f"{preset}.yaml"
                                                                      ).read_text()  # fmt: skip
    expected = ("tanh", "alpha", "capped") if published else ("clamp", "log_alpha", "exact")
    assert (cfg.agent.log_std, cfg.agent.alpha_loss, cfg.agent.tanh_correction) == expected
    assert published == preset.endswith("_mt10") or preset == "mt10_reference"


def test_every_row_of_the_mt10_table_trains_the_reference_sac():
    """``python -m mtrl.reproduce table=mt10``: each row's run reproduces a published one, so it keeps the
    reference's log-σ squashing and temperature loss whatever the plain defaults are."""
    import yaml

    import mtrl.tables

    rows = yaml.safe_load((Path(mtrl.tables.__file__).parent / "mt10.yaml").read_text())["rows"]
    assert len(rows) >= 10
    for row in rows:
        a = cfg_of(*row["overrides"]).agent
        assert (a.log_std, a.alpha_loss, a.tanh_correction) == ("tanh", "alpha", "capped"), row["id"]
