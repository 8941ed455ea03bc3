"""Generate the SM / CARE golden data from facebookresearch/mtrl's own component classes (run once; output kept).

    git clone https://github.com/facebookresearch/mtrl /tmp/fbmtrl
    git -C /tmp/fbmtrl checkout e282c3f5a205970b4ad7d1c1ebae7aa9b4d56218
    PYTHONPATH=/tmp/fbmtrl python tests/data/golden/make_golden.py --reference /tmp/fbmtrl

Run it with the reference's package first on the path and **without** this repository's ``mtrl`` (the two packages
share the name ``mtrl``): the script imports only the reference. It builds, in float64, the reference's ``Critic``
(one encoder shared by ``Q1`` and ``Q2``, ``mtrl/agent/components/critic.py``), ``Actor`` (``actor.py``) and
``TaskEncoder`` (``task_encoder.py``) exactly as the docs' "SoftModularization" and "CARE" commands configure them
(``docs_src/source/pages/tutorials/baseline.rst``; ``config/agent/components/metaworld_*.yaml``), with hidden size
16 instead of 400 (smaller files; the sizes that are the architecture's own, 50-d encoders and task encodings, 4
experts / modules, stay), sets every parameter to seeded random values (the reference initialises biases to zero,
which would hide a wrong bias; the values are rounded to what a float16 holds exactly, so that they are stored in half
the space and used in float64 without loss), and stores in ``sm_care_golden.pt``:

- each module's ``state_dict`` under the reference's own names;
- the inputs (observations, actions, task indices) and the outputs: the critic's ``(q1, q2)``, the actor model's
  raw ``[mean, log_std]`` output (before its tanh squashing; ``Actor.forward`` draws its own noise), and for CARE
  each stage on its own: the task encoding, the attention weights, every expert's output, their mixture.

The reference's network modules import ``gym`` and ``mtrl.env.vec_env`` only for type aliases
(``mtrl/utils/types.py``); those two are replaced by empty stand-ins here (no gym in this environment). Nothing else
of the reference is changed. The test that reads the data is ``tests/test_rl_golden.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import types
from pathlib import Path

import torch

REFERENCE_COMMIT = "e282c3f5a205970b4ad7d1c1ebae7aa9b4d56218"
MT10 = ["reach-v1", "push-v1", "pick-place-v1", "door-open-v1", "drawer-open-v1", "drawer-close-v1",
        "button-press-topdown-v1", "peg-insert-side-v1", "window-open-v1", "window-close-v1"]  # fmt: skip
K, OBS, ACT, HIDDEN, BATCH = 3, 39, 4, 16, 5  # tasks, raw observation (Meta-World), action, hidden size, samples


def _stub_gym() -> None:
    """Empty stand-ins for the two type-alias imports of ``mtrl/utils/types.py`` (see the module docstring)."""
    gym = types.ModuleType("gym")
    gym.spaces = types.SimpleNamespace(box=types.SimpleNamespace(Box=object))
    env = types.ModuleType("mtrl.env")
    env.__path__ = []  # a package, so that mtrl.env.vec_env can be found in sys.modules
    vec = types.ModuleType("mtrl.env.vec_env")
    vec.VecEnv = object
    sys.modules.update({"gym": gym, "mtrl.env": env, "mtrl.env.vec_env": vec})


def _cfg(kind: str, reference: Path):
    """``(encoder_cfg, multitask_cfg)`` of the docs' command for ``kind`` (``sm`` or ``care``)."""
    from omegaconf import OmegaConf

    ff = {"type": "feedforward", "hidden_dim": 50, "num_layers": 2, "feature_dim": 50, "should_tie_encoders": True}
    task_encoder = {
        "model_cfg": {
            "pretrained_embedding_cfg": {
                "should_use": kind == "care",
                "path_to_load_from": str(reference / "metadata/task_embedding/roberta_small/metaworld-mt10.json"),
                "ordered_task_list": MT10[:K],
            },
            "num_embeddings": K, "embedding_dim": 50, "hidden_dim": 50, "num_layers": 2, "output_dim": 50,
        },
        "losses_to_train": ["critic", "transition_reward", "decoder", "task_encoder"],
    }  # fmt: skip
    if kind == "sm":  # SoftModularization command
        encoder = ff
        actor_cfg = {"should_condition_model_on_task_info": True, "should_condition_encoder_on_task_info": False,
                     "should_concatenate_task_info_with_encoder": False,
                     "moe_cfg": {"mode": "soft_modularization", "num_experts": 4, "should_use": True}}  # fmt: skip
    else:  # CARE command: encoder=moe, mode=attention, num_experts=4
        attention = {
            "embedding_dim": 50,
            "hidden_dim": 50,
            "num_layers": 2,
            "temperature": 1.0,
            "should_use_soft_attention": True,
            "task_encoder_cfg": {"should_use_task_encoding": True, "should_detach_task_encoding": False},
        }
        encoder = {
            "type": "moe",
            "encoder_cfg": ff,
            "num_experts": 4,
            "task_id_to_encoder_id_cfg": {"mode": "attention", "num_envs": K, "attention": attention},
        }
        actor_cfg = {"should_condition_model_on_task_info": False, "should_condition_encoder_on_task_info": True,
                     "should_concatenate_task_info_with_encoder": True,
                     "moe_cfg": {"mode": "soft_modularization", "num_experts": 4, "should_use": False}}  # fmt: skip
    multitask = {"num_envs": K, "should_use_disentangled_alpha": True, "should_use_task_encoder": True,
                 "should_use_multi_head_policy": False, "should_use_disjoint_policy": False,
                 "task_encoder_cfg": task_encoder, "actor_cfg": actor_cfg, "critic_cfg": actor_cfg}  # fmt: skip
    return OmegaConf.create(encoder), OmegaConf.create(multitask)


def _randomise(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Every trainable parameter uniform in ±1/√fan-in (biases included); frozen ones (the RoBERTa table) kept."""
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                fan_in = p.shape[-2] if p.dim() == 3 else (p.shape[-1] if p.dim() == 2 else 16)
                p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) / fan_in**0.5)
                p.copy_(p.half().double())  # values a float16 holds exactly: stored as float16, used in float64


def generate(kind: str, reference: Path, gen: torch.Generator) -> dict:
    from mtrl.agent.components.actor import Actor
    from mtrl.agent.components.critic import Critic
    from mtrl.agent.components.task_encoder import TaskEncoder
    from mtrl.agent.ds.mt_obs import MTObs
    from mtrl.agent.ds.task_info import TaskInfo

    encoder_cfg, mt = _cfg(kind, reference)
    task_encoder = TaskEncoder(**mt.task_encoder_cfg.model_cfg).double()
    critic = Critic(env_obs_shape=[OBS], action_shape=[ACT], hidden_dim=HIDDEN, num_layers=3, encoder_cfg=encoder_cfg,
                    multitask_cfg=mt).double()  # fmt: skip
    actor = Actor(env_obs_shape=[OBS], action_shape=[ACT], hidden_dim=HIDDEN, num_layers=3, log_std_bounds=[-20, 2],
                  encoder_cfg=encoder_cfg, multitask_cfg=mt).double()  # fmt: skip
    for m in (task_encoder, critic, actor):
        _randomise(m, gen)
    env_index = torch.arange(BATCH) % K  # samples of every task, mixed in one batch as the reference's are
    obs = torch.randn(BATCH, OBS, generator=gen, dtype=torch.float64)
    action = torch.rand(BATCH, ACT, generator=gen, dtype=torch.float64) * 2 - 1
    out: dict = {"env_index": env_index, "obs": obs, "action": action}
    with torch.no_grad():
        encoding = task_encoder(env_index)
        info = TaskInfo(encoding=encoding, compute_grad=False, env_index=env_index.unsqueeze(1))
        mtobs = MTObs(env_obs=obs, task_obs=env_index, task_info=info)
        out["task_encoding"] = encoding
        out["q1"], out["q2"] = critic(mtobs=mtobs, action=action)
        # the actor model's raw output, exactly the first lines of Actor.forward (before the noise it draws)
        if kind == "sm":
            h = actor.encode(
                MTObs(
                    env_obs=obs,
                    task_obs=env_index,
                    task_info=TaskInfo(encoding=None, compute_grad=False, env_index=info.env_index),
                )
            )
            out["actor_raw"] = actor.model(MTObs(env_obs=h, task_obs=env_index, task_info=info))
        else:
            out["actor_raw"] = actor.model(actor.encode(mtobs))
            for name, enc in (("critic", critic.encoder), ("actor", actor.encoder)):
                att = enc.selection_network(task_info=info)  # [experts, B, 1]
                experts = enc.moe(obs)  # [experts, B, 50]
                out[f"{name}_attention"] = att.squeeze(-1).t()
                out[f"{name}_experts"] = experts
                out[f"{name}_mixture"] = enc(mtobs=mtobs)
    # trainable parameters stored as float16 (exact: see _randomise); the frozen RoBERTa rows as they are
    out["state"] = {n: {k: v.detach().clone() if k == "embedding.0.weight" and kind == "care" else v.detach().half()
                        for k, v in m.state_dict().items()}
                    for n, m in (("task_encoder", task_encoder), ("critic", critic), ("actor", actor))}  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, required=True, help="a checkout of facebookresearch/mtrl")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("sm_care_golden.pt"))
    args = p.parse_args()
    _stub_gym()
    import mtrl

    if Path(mtrl.__file__).resolve().parents[1] != args.reference.resolve():
        raise SystemExit(f"make_golden.py: imported mtrl from {mtrl.__file__}, not from {args.reference}: put the "
                         "reference first on PYTHONPATH")  # fmt: skip
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(2024)
    emb = args.reference / "metadata/task_embedding/roberta_small/metaworld-mt10.json"
    data = {"reference_commit": REFERENCE_COMMIT, "sizes": {"K": K, "obs": OBS, "act": ACT, "hidden": HIDDEN,
            "batch": BATCH}, "roberta_mt10_sha256": hashlib.sha256(emb.read_bytes()).hexdigest(),
            "sm": generate("sm", args.reference, gen), "care": generate("care", args.reference, gen)}  # fmt: skip
    torch.save(data, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
