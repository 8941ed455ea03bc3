"""IGBv2: the reward is the smallest normalised loss decline, random weights fill the buffer first, mtrl's own SAC
chooses the weights afterwards and learns from the buffer, and its whole state (SAC, buffer, generator) round-trips."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from mtrl.aggregators import make_aggregator

K = 3


def _losses(t: int) -> torch.Tensor:
    """A fixed loss sequence with different decline rates per task."""
    return torch.tensor([3.0 * 0.99**t, 1.0 * 0.97**t + 0.1 * np.sin(t), 0.2 * 0.995**t], dtype=torch.float64)


def _drive(agg, start: int, stop: int, G: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for t in range(start, stop):
        out.append(agg(G, losses=_losses(t)).weights)
        agg.step(_losses(t))
    return out


def test_reward_is_the_smallest_normalised_loss_decline() -> None:
    agg = make_aggregator("igbv2", window=4, baseline_window=1, update_every=1000)
    G = torch.eye(K, 5, dtype=torch.float64)
    _drive(agg, 0, 30, G)
    base = np.mean([_losses(t).numpy() for t in range(4, 8)], axis=0)  # the second window of 4 steps
    np.testing.assert_allclose(agg._baseline, base)
    buf = agg._buffer
    # the baseline exists after step 7: transitions from the calls at t = 8, 9, ... (the first one at t = 9)
    n = buf.size
    assert n == 30 - 9
    for j in range(n):
        t = 9 + j
        s_prev, s_next = _losses(t - 1).numpy() / base, _losses(t).numpy() / base
        np.testing.assert_allclose(buf.data["obs"][0, j], s_prev, rtol=1e-6)
        np.testing.assert_allclose(buf.data["next_obs"][0, j], s_next, rtol=1e-6)
        assert buf.data["reward"][0, j] == pytest.approx(np.min(s_prev - s_next), rel=1e-5, abs=1e-7)
        assert buf.data["terminated"][0, j] == 0


def test_random_weights_first_then_the_sac_policy() -> None:
    agg = make_aggregator("igbv2", window=2, random_windows=3, update_after=2, update_every=5, batch_size=16,
                          hidden_dim=16, seed=3)  # fmt: skip
    G = torch.randn(K, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ws = _drive(agg, 0, 40, G)
    for w in ws:
        assert w.sum().item() == pytest.approx(1.0) and (w > 0).all()
    assert agg._sac.n_updates > 0  # the SAC (mtrl's SAC with one task: test_igbv2_weight_sac.py), trained
    # after the random phase: w = softmax(β a) with a the SAC's action for the normalised losses
    t = 40
    state = _losses(t).numpy() / agg._baseline
    gen_state = agg.generator.get_state()
    w = agg(G, losses=_losses(t)).weights.numpy()
    g = torch.Generator()
    g.set_state(gen_state)
    a = agg._sac.act(state[None].astype(np.float32), g)[0].astype(np.float64)
    expected = np.exp(agg.action_scale * a) / np.exp(agg.action_scale * a).sum()
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert not np.allclose(ws[5].numpy(), ws[6].numpy())  # random weights change every step


ROUND_TRIP = dict(window=3, random_windows=2, update_after=1, update_every=4, batch_size=8, hidden_dim=8, seed=1)


def _round_trip_G() -> torch.Tensor:
    return torch.randn(K, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _through_checkpoint(state: dict) -> dict:
    """``state`` saved and loaded as in a checkpoint: tensors and plain types only (``weights_only``)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_round_trip_continues_exactly() -> None:
    kw, G = ROUND_TRIP, _round_trip_G()
    straight = make_aggregator("igbv2", **kw)
    ref = _drive(straight, 0, 60, G)
    first = make_aggregator("igbv2", **kw)
    _drive(first, 0, 30, G)
    resumed = make_aggregator("igbv2", **kw)
    resumed.load_state_dict(_through_checkpoint(first.state_dict()))
    rest = _drive(resumed, 30, 60, G)
    for a, b in zip(ref[30:], rest):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_restored_agent_checkpointed_before_its_next_call_keeps_its_sac() -> None:
    """The SAC is built at the first call (when K is known), so a restored one waits for it; a checkpoint taken in
    between (a SIGTERM right after a resume) must still hold the SAC and its buffer, and continue exactly."""
    kw, G = ROUND_TRIP, _round_trip_G()
    straight = make_aggregator("igbv2", **kw)
    ref = _drive(straight, 0, 50, G)
    first = make_aggregator("igbv2", **kw)
    _drive(first, 0, 30, G)
    state = first.state_dict()
    assert {"sac", "buffer"} <= set(state)
    again = make_aggregator("igbv2", **kw)
    again.load_state_dict(state)
    resumed = make_aggregator("igbv2", **kw)
    resumed.load_state_dict(_through_checkpoint(again.state_dict()))  # no call in between
    for a, b in zip(ref[30:], _drive(resumed, 30, 50, G)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [{"random_windows": 1, "baseline_window": 1}, {"action_scale": 0.0},
                                    {"update_every": 0}, {"gamma": 1.5}])  # fmt: skip
def test_bad_hyperparameters_are_refused(kwargs) -> None:
    with pytest.raises(ValueError, match="igbv2"):
        make_aggregator("igbv2", **kwargs)
