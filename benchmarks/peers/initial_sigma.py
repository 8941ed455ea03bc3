"""The first policy's σ under ``agent.log_std=tanh`` and ``clamp`` (docs/parity.md).

    PYTHONPATH=. python benchmarks/peers/initial_sigma.py

Fresh parity-size actors (MLP 256 x 256, as ``parity.py``'s settings), seeds 1-3, on MT1 reach-v3 observations of
200 random steps: the raw log σ output of the network and the σ each squashing makes of it.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import OmegaConf

from mtrl._paths import config_dir
from mtrl.agents import MultiTaskSAC, SACConfig
from mtrl.envs import make_envs


def main() -> None:
    torch.set_num_threads(1)
    cfg = OmegaConf.load(f"{config_dir()}/env/mt1.yaml")
    cfg.task = "reach-v3"
    envs = make_envs(cfg, 1)
    obs = [envs.reset(seed=1)[0]]
    for _ in range(200):
        obs.append(envs.step(envs.action_space.sample())[0])
    envs.close()
    x = torch.tensor(np.concatenate(obs), dtype=torch.float32)[None]  # [1 task, 201, obs]
    act = int(envs.action_space.shape[-1])
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        agent = MultiTaskSAC(x.shape[-1], act, 1, SACConfig(hidden_dim=256, num_layers=2, task_id_dims=0), {})
        raw = agent.actor.forward_all(dict(agent.actor.shared), dict(agent.actor.task), x)[..., act:]
        tanh_sigma = (-20 + 11 * (torch.tanh(raw) + 1)).exp()
        print(f"seed {seed}: raw log σ output in [{raw.min():.2f}, {raw.max():.2f}]; tanh: σ median "
              f"{tanh_sigma.median():.1e} (max {tanh_sigma.max():.1e}); clamp: σ median "
              f"{raw.clamp(-20, 2).exp().median():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
