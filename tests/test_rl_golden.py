"""SM and CARE against facebookresearch/mtrl's own classes: golden outputs, CARE stage by stage, the embedding files.

``tests/data/golden/sm_care_golden.pt`` holds fixed weights and the outputs the reference's ``Critic``, ``Actor``
and ``TaskEncoder`` computed from them (float64), generated once by ``tests/data/golden/make_golden.py`` from
facebookresearch/mtrl at commit ``e282c3f5`` (the commit is stored in the file and checked here). Each test loads
those weights into mtrl's networks (name by name: the mapping below is the reference's module layout) and asks for
the same numbers to 1e-12: a wrong wiring (attention over the wrong experts, a missing ReLU, a uniform mixture, a
transposed weight) changes them by far more. ``benchmarks/results/mutation_sm_care.txt`` records that the four
known wrong versions of issue 24 fail here.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest
import torch

from mtrl.agents.archs import CareNet, NetSpec, SoftModularNet
from mtrl.agents.archs._base import linear

GOLDEN = Path(__file__).parent / "data" / "golden" / "sm_care_golden.pt"
REFERENCE_COMMIT = "e282c3f5a205970b4ad7d1c1ebae7aa9b4d56218"
MT10_V1 = ("reach-v1", "push-v1", "pick-place-v1")  # the reference's ordered_task_list[:K] in the generator
# the shipped RoBERTa task-description embeddings: byte-identical to the reference's
# metadata/task_embedding/roberta_small/metaworld-mt{10,50}.json at that commit
ROBERTA_SHA256 = {
    "roberta_small_metaworld-mt10.json": "756bfbb7cd4c5bddf5e573c29201fee046a24e5edd2fef2b9549255b7a719b3f",
    "roberta_small_metaworld-mt50.json": "1f58bf855762e4833c90fd5c2493423b7d97b7d5a1ff644b510da50962623197",
}
TOL = dict(rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def golden() -> dict:
    data = torch.load(GOLDEN, weights_only=True)
    assert data["reference_commit"] == REFERENCE_COMMIT
    return data


def _t(w: torch.Tensor) -> torch.Tensor:
    """An ``nn.Linear`` weight ``[out, in]`` as mtrl stores it, ``[in, out]``, in float64."""
    return w.double().t().contiguous()


def _spec(g: dict, critic: bool) -> NetSpec:
    s = g["sizes"]
    obs_dim = s["obs"] + s["K"]  # mtrl's observation carries the one-hot task id at the end
    return NetSpec(in_dim=obs_dim + (s["act"] if critic else 0), out_dim=1 if critic else 2 * s["act"],
                   obs_dim=obs_dim, num_tasks=s["K"], hidden_dim=s["hidden"], num_layers=3, init="xavier",
                   task_names=MT10_V1)  # fmt: skip


def _load(net: torch.nn.Module, values: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = net.double()
    with torch.no_grad():
        for k, v in values.items():
            d = net.task if k in net.task else net.shared
            assert d[k].shape == v.shape, (k, d[k].shape, v.shape)
            d[k].copy_(v.double())
    assert set(values) == set(net.shared) | set(net.task)  # every parameter comes from the reference
    return net


def sm_values(g: dict, net: str) -> dict[str, torch.Tensor]:
    """mtrl's SM parameters from the reference's ``TaskEncoder`` and ``Critic`` (``net`` = ``Q1``/``Q2``) or
    ``Actor`` (``net`` = ``actor``) state dicts."""
    te, st = g["sm"]["state"]["task_encoder"], g["sm"]["state"]["critic" if net != "actor" else "actor"]
    m = "model" if net == "actor" else f"{net}.model"
    v = {"emb": te["embedding.0.weight"].double()}
    for j in range(3):
        v |= {
            f"te{j}_w": _t(te[f"trunk.{2 * j}.weight"]),
            f"te{j}_b": te[f"trunk.{2 * j}.bias"].double(),
            f"enc{j}_w": _t(st[f"encoder.trunk.{2 * j}.weight"]),
            f"enc{j}_b": st[f"encoder.trunk.{2 * j}.bias"],
        }
    if net != "actor":
        v |= {"proj_w": _t(st[f"{net}.obs_action_projection_layer.weight"]),
              "proj_b": st[f"{net}.obs_action_projection_layer.bias"]}  # fmt: skip
    r = f"{m}.routing_network"
    v |= {"route_in_w": _t(st[f"{r}.projection_before_routing.weight"]),
          "route_in_b": st[f"{r}.projection_before_routing.bias"],
          "route_d0_w": _t(st[f"{r}.W_d.0.weight"]), "route_d0_b": st[f"{r}.W_d.0.bias"],
          "mod0_w": st[f"{m}.layers.0.0.weight"], "mod0_b": st[f"{m}.layers.0.0.bias"],
          "mod1_w": st[f"{m}.layers.1.weight"], "mod1_b": st[f"{m}.layers.1.bias"]}  # fmt: skip
    return v


def care_values(g: dict, net: str) -> dict[str, torch.Tensor]:
    """mtrl's CARE parameters from the reference's ``TaskEncoder`` (pretrained RoBERTa) and ``Critic``/``Actor``."""
    te, st = g["care"]["state"]["task_encoder"], g["care"]["state"]["critic" if net != "actor" else "actor"]
    m = "model" if net == "actor" else f"{net}.model"
    v = {"proj0_w": _t(te["embedding.2.0.weight"]), "proj0_b": te["embedding.2.0.bias"],
         "proj1_w": _t(te["embedding.2.2.weight"]), "proj1_b": te["embedding.2.2.bias"],
         "exp0_w": st["encoder.moe._model.0.weight"], "exp0_b": st["encoder.moe._model.0.bias"],
         "exp1_w": st["encoder.moe._model.2.weight"], "exp1_b": st["encoder.moe._model.2.bias"]}  # fmt: skip
    for j in range(3):
        a = f"encoder.selection_network.trunk.{2 * j}"
        v |= {f"te{j}_w": _t(te[f"trunk.{2 * j}.weight"]), f"te{j}_b": te[f"trunk.{2 * j}.bias"],
              f"att{j}_w": _t(st[f"{a}.weight"]), f"att{j}_b": st[f"{a}.bias"]}  # fmt: skip
    for j in range(4):
        v |= {f"trunk{j}_w": _t(st[f"{m}.{2 * j}.weight"]), f"trunk{j}_b": st[f"{m}.{2 * j}.bias"]}
    return v


def _inputs(g: dict, kind: str, critic: bool) -> torch.Tensor:
    d, K = g[kind], g["sizes"]["K"]
    x = torch.cat([d["obs"], torch.nn.functional.one_hot(d["env_index"], K).double()], dim=-1)
    return torch.cat([x, d["action"]], dim=-1) if critic else x


def _per_task(net: torch.nn.Module, g: dict, kind: str, x: torch.Tensor) -> torch.Tensor:
    """``net.forward_one`` on each task's samples with that task's slice of the per-task parameters."""
    idx = g[kind]["env_index"]
    out = torch.empty(x.shape[0], net.spec.out_dim, dtype=torch.float64)
    with torch.no_grad():
        for k in range(g["sizes"]["K"]):
            rows = idx == k
            out[rows] = net.forward_one(dict(net.shared), {n: p[k] for n, p in net.task.items()}, x[rows])
    return out


def test_golden_file_comes_from_the_reference_commit_and_its_embedding_file(golden):
    assert golden["reference_commit"] == REFERENCE_COMMIT
    assert golden["roberta_mt10_sha256"] == ROBERTA_SHA256["roberta_small_metaworld-mt10.json"]


@pytest.mark.parametrize("name", sorted(ROBERTA_SHA256))
def test_shipped_task_embedding_files_are_pinned(name):
    """The RoBERTa JSONs CARE reads are the reference's, byte for byte (a changed file changes every CARE run)."""
    data = resources.files("mtrl.agents").joinpath("data", name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == ROBERTA_SHA256[name]


NETS = {"sm": (SoftModularNet, sm_values), "care": (CareNet, care_values)}  # mtrl's class, the weights it gets


@pytest.mark.parametrize("arch", sorted(NETS))
@pytest.mark.parametrize("which", ["Q1", "Q2", "actor"])
def test_network_matches_the_reference(golden, arch, which):
    """Q1, Q2 (the critic's input) and the actor's raw output, per task, against the reference's own classes."""
    cls, values = NETS[arch]
    critic = which != "actor"
    net = _load(cls(_spec(golden, critic=critic)), values(golden, which))
    got = _per_task(net, golden, arch, _inputs(golden, arch, critic=critic))
    torch.testing.assert_close(got, golden[arch][which.lower() if critic else "actor_raw"], **TOL)


def test_sm_task_encoding_matches_the_reference(golden):
    """``z_i = MLP_te(relu(e_i))``: the reference's ``TaskEncoder`` (the ReLU after the embedding included)."""
    v = sm_values(golden, "Q1")
    net = _load(SoftModularNet(_spec(golden, critic=True)), v)
    from mtrl.agents.archs._base import mlp

    with torch.no_grad():
        z = mlp(dict(net.shared), "te", 3, torch.relu(net.task["emb"]))
    torch.testing.assert_close(z[golden["sm"]["env_index"]], golden["sm"]["task_encoding"], **TOL)


@pytest.mark.parametrize("which", ["critic", "actor"])
def test_care_module_by_module(golden, which):
    """Each CARE stage on its own against the reference's module: the frozen RoBERTa rows, the context encoder
    (``TaskEncoder``), the attention weights (``AttentionBasedExperts``), every expert (``moe_layer.FeedForward``)
    and the attention-weighted mixture (``MixtureofExpertsEncoder``)."""
    d = golden["care"]
    net = _load(CareNet(_spec(golden, critic=which == "critic")), care_values(golden, "Q1" if which == "critic"
                                                                               else "actor"))  # fmt: skip
    x = _inputs(golden, "care", critic=which == "critic")
    sh = dict(net.shared)
    torch.testing.assert_close(net.roberta, d["state"]["task_encoder"]["embedding.0.weight"].double(), rtol=0, atol=0)
    with torch.no_grad():
        z, att = net.context(sh, x)
        experts = linear(sh, "exp1", torch.relu(linear(sh, "exp0", x[:, : golden["sizes"]["obs"]])))
        mixture = torch.einsum("bk,kbd->bd", att, experts)
    torch.testing.assert_close(z, d["task_encoding"], **TOL)
    torch.testing.assert_close(att, d[f"{which}_attention"], **TOL)
    torch.testing.assert_close(experts, d[f"{which}_experts"], **TOL)
    torch.testing.assert_close(mixture, d[f"{which}_mixture"], **TOL)
    # the data can tell a wrong wiring apart (at a 1e-12 tolerance): the attention is not uniform (±0.03 here: the
    # RoBERTa rows are nearly parallel) and not symmetric under a flip of the experts
    assert (att - 0.25).abs().max() > 0.01 and (att - att.flip(-1)).abs().max() > 0.01


@pytest.mark.parametrize("kind", ["sm", "care"])
def test_reference_encoders_agent_critic_matches_the_reference_critic(golden, kind):
    """``agent.encoders=reference``: the agent's twin critic is the reference's ``Critic``, one encoder (and task
    encoder) read by both Q functions. The reference's weights go in once, through Q1's parameters (which Q2 shares)
    and each Q function's own trunk; both Q values come out as the reference's."""
    from mtrl.agents import MultiTaskSAC, SACConfig
    from mtrl.agents.losses import twin_q_one

    s = golden["sizes"]
    cfg = SACConfig(hidden_dim=s["hidden"], num_layers=3, arch=kind, init="xavier", task_names=MT10_V1,
                    encoders="reference", target_task_encoder="online", encoder_tau=0.05)  # fmt: skip
    agent = MultiTaskSAC(s["obs"] + s["K"], s["act"], s["K"], cfg, {})
    values = sm_values if kind == "sm" else care_values
    q1, q2 = values(golden, "Q1"), values(golden, "Q2")
    group = agent.q1.param_group
    assert all(torch.equal(q1[k], q2[k]) for k in q1 if group(k) != "trunk")  # the reference holds one encoder
    _load(agent.q1, q1)
    _load(
        agent.q2, {k: v for k, v in q2.items() if group(k) == "trunk"} | {k: q1[k] for k in q1 if group(k) != "trunk"}
    )
    c_sh, c_tk = agent._critic_params()
    x, idx = _inputs(golden, kind, critic=True), golden[kind]["env_index"]
    obs_dim = s["obs"] + s["K"]
    out1, out2 = torch.empty(len(idx), dtype=torch.float64), torch.empty(len(idx), dtype=torch.float64)
    with torch.no_grad():
        for k in range(s["K"]):
            rows = idx == k
            tk = {n: {m: v[k] for m, v in d.items()} for n, d in c_tk.items()}
            out1[rows], out2[rows] = twin_q_one(c_sh, tk, x[rows, :obs_dim], x[rows, obs_dim:], agent.n_critic)
    torch.testing.assert_close(out1, golden[kind]["q1"].squeeze(-1), **TOL)
    torch.testing.assert_close(out2, golden[kind]["q2"].squeeze(-1), **TOL)
