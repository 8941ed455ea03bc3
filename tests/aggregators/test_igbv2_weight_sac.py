"""Issue 15 (structure): IGBv2's weight agent lives in ``mtrl.aggregators._weight_sac`` (aggregators import nothing
from ``mtrl.agents``). It must be the computation IGBv2 used before, mtrl's ``MultiTaskSAC`` with one task, a
shared MLP and no aggregator: checked here step by step, bit for bit (initial weights, actions, every update's
parameters and optimiser state), with interchangeable state dicts (checkpoints written before still load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrl.agents import MultiTaskReplayBuffer, SACConfig
from mtrl.aggregators._weight_sac import WeightReplay, WeightSAC
from tests._reference_update import ReferenceSAC


def _pair(K: int, hidden: int, layers: int, lr: float, gamma: float, seed: int):
    torch.manual_seed(seed)
    ours = WeightSAC(K, K, hidden, layers, lr=lr, gamma=gamma)
    torch.manual_seed(seed)
    cfg = SACConfig(hidden_dim=hidden, num_layers=layers, arch="shared", lr=lr, alpha_lr=lr, gamma=gamma,
                    aggregate_on=(), per_task_grads="vmap", log_std="tanh", alpha_loss="alpha")  # fmt: skip
    ref = ReferenceSAC(K, K, 1, cfg, {}, device="cpu")  # the agent's update as IGBv2 used it (before issue 14)
    return ours, ref


def _assert_same(a, b, path="") -> None:
    if isinstance(a, dict):
        a, b = ({k: v for k, v in d.items() if k != "foreach"} for d in (a, b))  # an optimiser's dispatch option
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
    else:
        assert a == b, (path, a, b)


@pytest.mark.parametrize("K, hidden, layers, gamma", [(3, 16, 2, 0.99), (5, 8, 3, 0.9)])
def test_weight_sac_is_mtrl_sac_with_one_task_bit_for_bit(K, hidden, layers, gamma) -> None:
    ours, ref = _pair(K, hidden, layers, lr=1e-3, gamma=gamma, seed=4)
    _assert_same(ours.state_dict(), ref.state_dict())
    buf_o, buf_r = WeightReplay(40, K, K), MultiTaskReplayBuffer(1, 40, K, K)
    data = np.random.default_rng(0)
    g_o, g_r = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for t in range(60):  # the buffer wraps around (capacity 40)
        s, s2 = data.normal(size=(1, K)), data.normal(size=(1, K))
        state = s.astype(np.float32)
        a_o, a_r = ours.act(state, g_o), ref.act(state, g_r)
        np.testing.assert_array_equal(a_o, a_r)
        r = [float(data.normal())]
        buf_o.add(s, a_o, r, s2, [0.0])
        buf_r.add(s, a_r, r, s2, [0.0])
        if t >= 5:
            seed = int(data.integers(2**31 - 1))
            b_o = buf_o.sample(12, np.random.default_rng(seed))
            b_r = buf_r.sample(12, np.random.default_rng(seed))
            _assert_same(b_o, b_r)
            ours.update(b_o, g_o)
            ref.update(b_r, g_r)
    assert ours.n_updates == ref.n_updates == 55
    _assert_same(ours.state_dict(), ref.state_dict())
    _assert_same(buf_o.state_dict(), buf_r.state_dict())
    _assert_same(g_o.get_state(), g_r.get_state())


def test_state_dicts_are_interchangeable() -> None:
    ours, ref = _pair(3, 8, 2, lr=3e-4, gamma=0.99, seed=1)
    other, _ = _pair(3, 8, 2, lr=3e-4, gamma=0.99, seed=2)
    other.load_state_dict(ref.state_dict())  # a checkpoint written when IGBv2 used MultiTaskSAC
    _assert_same(other.state_dict(), ours.state_dict())
    ref.load_state_dict(ours.state_dict())
    _assert_same(ref.state_dict(), ours.state_dict())
