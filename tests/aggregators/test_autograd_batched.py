"""Issue 14: per-task gradients by one batched vector-Jacobian pass equal those of K backward passes (MTAN SegNet,
small); where the batched pass is not supported, the K passes are used; the ``rep_grad`` approximation."""

from __future__ import annotations

import logging

import pytest
import torch

from mtrl.aggregators import make_aggregator
from mtrl.aggregators._autograd import (
    PerTaskGradients,
    aggregate_backward,
    aggregate_backward_rep,
    per_task_gradients,
)
from mtrl.supervised.models import CelebACNN, MTANSegNet
from mtrl.supervised.trainer import task_losses

TASKS = {"segmentation": "segmentation", "depth": "depth", "normal": "normal"}


def _batch(h: int = 32, w: int = 64, b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(b, 3, h, w, generator=g),
        "label": torch.randint(-1, 13, (b, h, w), generator=g),
        "depth": torch.rand(b, 1, h, w, generator=g),
        "normal": torch.nn.functional.normalize(torch.randn(b, 3, h, w, generator=g), dim=1),
    }


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("attention", [True, False])
def test_batched_vjp_gives_the_same_G_as_k_backward_passes_on_mtan_segnet(attention: bool) -> None:
    torch.manual_seed(0)
    model = MTANSegNet(TASKS, 13, width=0.0625, attention=attention)
    shared, _ = model.split_parameters("backbone")
    batch = _batch()
    losses = task_losses("nyuv2", TASKS, model(batch["image"]), batch)
    G_loop = per_task_gradients(losses, shared)
    G_batched = per_task_gradients(losses, shared, batched=True)
    assert G_loop.shape == G_batched.shape == (3, sum(p.numel() for p in shared))
    assert G_loop.abs().max() > 0
    torch.testing.assert_close(G_batched, G_loop, rtol=1e-5, atol=1e-6)
    engine = PerTaskGradients("batched")
    torch.testing.assert_close(engine(losses, shared), G_loop, rtol=1e-5, atol=1e-6)
    assert engine.chosen == "batched" and engine.fallback_reason is None


class _HostRoundTrip(torch.autograd.Function):
    """Identity whose backward reads a value on the host (``.item()``): cannot run under vmap."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad * (1.0 if grad.abs().sum().item() >= 0 else 0.0)


class _Unbatchable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = torch.nn.Linear(5, 8)
        self.heads = torch.nn.ModuleList([torch.nn.Linear(8, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = _HostRoundTrip.apply(torch.tanh(self.trunk(x)))
        return [head(h).pow(2).mean() for head in self.heads]


@pytest.mark.parametrize("mode", ["batched", "auto"])
def test_unsupported_batched_pass_falls_back_to_k_backward_passes(mode: str, caplog) -> None:
    torch.manual_seed(0)
    model = _Unbatchable()
    x = torch.randn(6, 5)
    shared = list(model.trunk.parameters())
    with pytest.raises(RuntimeError):  # the batched pass itself is not supported here
        per_task_gradients(model(x), shared, batched=True)
    engine = PerTaskGradients(mode, measure_on_cpu=True)  # auto measures on CPU too here
    G_loop = per_task_gradients(model(x), shared)
    with caplog.at_level(logging.WARNING, logger="mtrl.aggregators"):
        G = engine(model(x), shared)
    assert engine.chosen == "loop" and engine.fallback_reason
    assert sum("not supported" in r.getMessage() for r in caplog.records) == 1
    torch.testing.assert_close(G, G_loop)
    # and through the whole backward: the same gradients as the default K passes
    agg = make_aggregator("imgrad")
    model.zero_grad()
    aggregate_backward(agg, model(x), shared, list(model.heads.parameters()), jacobian=engine)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    aggregate_backward(make_aggregator("imgrad"), model(x), shared, list(model.heads.parameters()))
    for a, b in zip(got, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(a, b)


def test_auto_measures_then_keeps_one_way_and_resumes_with_it() -> None:
    torch.manual_seed(0)
    model = MTANSegNet(TASKS, 13, width=0.0625, attention=False)
    shared, _ = model.split_parameters("backbone")
    batch = _batch()
    engine = PerTaskGradients("auto", rounds=2, measure_on_cpu=True)
    ref = None
    for _ in range(5):
        losses = task_losses("nyuv2", TASKS, model(batch["image"]), batch)
        G = engine(losses, shared)
        ref = G if ref is None else ref
        torch.testing.assert_close(G, ref, rtol=1e-5, atol=1e-6)  # same G whichever way computed it
    assert engine.chosen in ("loop", "batched")
    again = PerTaskGradients("auto")
    again.load_state_dict(engine.state_dict())
    assert again.chosen == engine.chosen
    assert PerTaskGradients("auto").chosen is None
    cpu = PerTaskGradients("auto")  # the CPU rule: K backward passes, no measurement
    cpu(task_losses("nyuv2", TASKS, model(batch["image"]), batch), shared)
    assert cpu.chosen == "loop"


# ------------------------------------------------------------------------------------------------ rep_grad
def _rep_vs_params(model, batch, benchmark, tasks, method: str):
    shared, task_specific = model.split_parameters("backbone")
    seen = {}

    class Spy:
        def __init__(self, agg):
            self.agg = agg

        def __call__(self, G, losses=None):
            seen["G"] = G.shape
            return self.agg(G, losses=losses)

    model.zero_grad()
    losses = task_losses(benchmark, tasks, model(batch["image"]), batch)
    aggregate_backward(make_aggregator(method), losses, shared, task_specific, scale=3.0)
    by_params = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    rep = model.encode(batch["image"])
    rep_in = rep.detach().requires_grad_()
    losses = task_losses(benchmark, tasks, model.decode(rep_in), batch)
    aggregate_backward_rep(Spy(make_aggregator(method)), losses, rep, rep_in, task_specific, scale=3.0)
    by_rep = [p.grad.clone() for p in model.parameters()]
    return by_params, by_rep, seen["G"], rep.numel()


@pytest.mark.parametrize("method", ["ls", "stl"])
def test_rep_grad_equals_params_mode_for_fixed_linear_weights_and_G_has_the_representation_size(method: str) -> None:
    torch.manual_seed(0)
    model = MTANSegNet(TASKS, 13, width=0.0625, attention=False)
    by_params, by_rep, shape, rep_size = _rep_vs_params(model, _batch(), "nyuv2", TASKS, method)
    assert shape == (3, rep_size) and rep_size == 2 * model.filters[0] * 32 * 64
    assert rep_size < sum(p.numel() for p in model.split_parameters("backbone")[0])
    a, b = torch.cat([g.reshape(-1) for g in by_params]), torch.cat([g.reshape(-1) for g in by_rep])
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))  # float32 rounding only


def test_rep_grad_is_an_approximation_for_gradient_dependent_weights() -> None:
    """MGDA's weights depend on G: parameter and representation gradients give different updates."""
    torch.manual_seed(0)
    model = CelebACNN(4, width=0.0625)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(4, 3, 32, 32, generator=g), "attributes": torch.randint(0, 2, (4, 4), generator=g)}
    batch["attributes"] = batch["attributes"].float()
    by_params, by_rep, shape, rep_size = _rep_vs_params(model, batch, "celeba", None, "mgda")
    assert shape == (4, rep_size) and rep_size == 4 * model.heads[0].in_features
    assert all(torch.isfinite(g).all() for g in by_rep)
    a, b = torch.cat([g.reshape(-1) for g in by_params]), torch.cat([g.reshape(-1) for g in by_rep])
    assert float((a - b).norm()) > 1e-2 * float(a.norm())  # not a rounding difference


def test_rep_grad_refuses_mtan_attention() -> None:
    model = MTANSegNet(TASKS, 13, width=0.0625, attention=True)
    with pytest.raises(ValueError, match="attention"):
        model.encode(_batch()["image"])


@pytest.mark.parametrize("rep", [False, True])
def test_bench_supervised_script_runs(tmp_path, monkeypatch, rep: bool) -> None:
    """``scripts/bench_supervised.py`` at a toy size (in process): a row per method, appended to ``--out``."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_supervised.py"
    spec = importlib.util.spec_from_file_location("bench_supervised", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "bench.txt"
    args = ["--width", "0.0625", "--rounds", "1", "--iters", "1", "--resolutions", "32x32", "--methods", "ls,cagrad",
            "--out", str(out), *(["--rep"] if rep else [])]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    mod.main()
    rows = [ln for ln in out.read_text().splitlines() if ln.strip().startswith("32x32")]
    assert [r.split()[1] for r in rows] == ["ls", "cagrad"]
