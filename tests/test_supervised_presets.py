"""Issue 26: the published rows' settings (``experiment=<method>_<benchmark>``), ``head_grads=weighted``, and the
papers' evaluation (last-10 mean, CelebA's best-validation epoch, CelebA Δm%)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from mtrl import _cli
from mtrl._paths import config_dir
from mtrl.aggregators import aggregate_backward, make_aggregator
from mtrl.supervised import evaluation as E
from mtrl.supervised import metrics as M
from mtrl.supervised import trainer
from mtrl.supervised.synthetic import CELEBA_ATTRIBUTES
from mtrl.supervised.train import rewrite_argv

ROOT = Path(__file__).resolve().parents[1]

#: The reference values, read off each reference repository (docs/reference-supervised.md gives file and key):
#: benchmark, aggregator, its kwargs, shared set, head gradients, gradient scale.
REFERENCE = {
    "nashmtl_nyuv2": ("nyuv2", "nashmtl", {"solver": "cccp", "optim_niter": 20, "update_weights_every": 1,
                                           "max_norm": 1.0}, "backbone+attention", "weighted", "K"),
    "nashmtl_cityscapes": ("cityscapes", "nashmtl", {"solver": "cccp", "optim_niter": 20, "update_weights_every": 1,
                                                     "max_norm": 1.0}, "backbone+attention", "weighted", "K"),
    "famo_nyuv2": ("nyuv2", "famo", {"gamma": 0.001, "w_lr": 0.025}, "backbone+attention", "weighted", "1"),
    "famo_cityscapes": ("cityscapes", "famo", {"gamma": 0.01, "w_lr": 0.025}, "backbone+attention", "weighted", "1"),
    "famo_celeba": ("celeba", "famo", {"gamma": 0.001, "w_lr": 0.025}, "backbone+attention", "weighted", "1"),
    "cagrad_nyuv2": ("nyuv2", "cagrad", {"c": 0.4, "rescale": 1}, "backbone", "plain", "K"),
    "cagrad_cityscapes": ("cityscapes", "cagrad", {"c": 0.4, "rescale": 1}, "backbone", "plain", "K"),
    "imgrad_nyuv2": ("nyuv2", "imgrad", {"c": 0.8, "a": 1.5, "rescale": 1}, "backbone", "plain", "K"),
    "imgrad_cityscapes": ("cityscapes", "imgrad", {"c": 0.8, "a": 1.5, "rescale": 1}, "backbone", "plain", "K"),
}  # fmt: skip
#: the papers' protocol per benchmark (SPEC §6; the benchmark configs): lr, StepLR step, batch size, epochs
PROTOCOL = {"nyuv2": (1e-4, 100, 2, 200), "cityscapes": (1e-4, 100, 8, 200), "celeba": (3e-4, None, 256, 15)}


def _sup(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="supervised", overrides=rewrite_argv(list(overrides)))


# ====================================================================== presets
def test_every_preset_file_is_checked_here() -> None:
    files = sorted(p.stem for p in (ROOT / "configs" / "supervised_experiment").glob("*.yaml"))
    assert files == sorted(REFERENCE)


@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_each_preset_composes_to_its_reference_values(preset: str) -> None:
    bench, agg, kwargs, shared, heads, scale = REFERENCE[preset]
    cfg = _sup(f"experiment={preset}")
    assert cfg.benchmark.name == bench and cfg.preset.name == preset and cfg.preset.benchmark == bench
    assert cfg.aggregator == agg and dict(cfg.aggregator_kwargs) == kwargs
    assert (cfg.shared, cfg.head_grads, str(cfg.grad_scale)) == (shared, heads, scale)
    lr, step, bs, epochs = PROTOCOL[bench]
    assert (cfg.optim.lr, cfg.optim.lr_step, cfg.optim.batch_size, cfg.epochs) == (lr, step, bs, epochs)
    assert cfg.model.width == 1.0  # the papers' network
    built = make_aggregator(agg, **kwargs)  # the kwargs reach the method
    assert all(getattr(built, k) == v for k, v in kwargs.items())
    trainer.check_config(_sup(f"experiment={preset}", "data=synthetic"))


def test_a_preset_refuses_another_benchmark_and_weighted_heads_need_weights() -> None:
    with pytest.raises(trainer.ConfigError, match="experiment=famo_nyuv2 holds the nyuv2 reference settings"):
        trainer.check_config(_sup("experiment=famo_nyuv2", "benchmark=cityscapes", "data=synthetic"))
    with pytest.raises(trainer.ConfigError, match="head_grads=weighted .* aggregator graddrop returns none"):
        trainer.check_config(_sup("aggregator=graddrop", "head_grads=weighted", "data=synthetic"))
    with pytest.raises(trainer.ConfigError, match="head_grads must be one of plain, weighted"):
        trainer.check_config(_sup("head_grads=both", "data=synthetic"))
    assert _sup().head_grads == "plain" and _sup().preset is None  # defaults without a preset stay as they were


def test_rl_and_supervised_experiment_groups_are_apart(capsys: pytest.CaptureFixture[str]) -> None:
    """The RL app neither lists nor accepts a supervised preset, and the supervised app neither lists nor accepts
    an RL preset (the supervised presets live in configs/supervised_experiment/, ``experiment=`` on its command
    line points there)."""
    rl_presets = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
    assert "cagrad_mt10" in rl_presets and not set(rl_presets) & set(REFERENCE)

    def refused(prog: str, config: str, overrides: list[str]) -> str:
        with pytest.raises(SystemExit) as exc:
            _cli.precheck(prog, config, overrides, lambda cfg: None, ())
        assert exc.value.code == 2
        return capsys.readouterr().err

    err = refused("mtrl.train", "train", ["experiment=famo_nyuv2"])
    assert "Could not find 'experiment/famo_nyuv2'" in err and "cagrad_mt10" in err
    assert not any(p in err.split("available options")[1] for p in REFERENCE)  # the listing: RL presets only
    err = refused("mtrl.train", "train", ["supervised_experiment=famo_nyuv2"])
    assert "No match in the defaults list" in err
    err = refused("mtrl.supervised.train", "supervised", rewrite_argv(["experiment=cagrad_mt10"]))
    assert "Could not find 'experiment/cagrad_mt10'" in err and "famo_celeba" in err
    assert not any(p in err.split("available options")[1] for p in rl_presets)  # supervised presets only
    # the RL presets still compose in the RL app; a supervised preset composes in the supervised app
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        assert compose("train", overrides=["experiment=cagrad_mt10"]).agent.aggregator == "cagrad"
    assert _sup("experiment=famo_celeba").aggregator == "famo"


def test_the_alias_keeps_prefixes_and_leaves_other_keys_alone() -> None:
    alias = _cli.GROUP_ALIASES["supervised"]
    argv = ["experiment=a", "+experiment=b", "~experiment", "experiment.x=1", "aggregator_kwargs.c=1", "seed=2"]
    assert _cli.rewrite_argv(argv, "aggregator_kwargs", alias) == [
        "supervised_experiment=a", "+supervised_experiment=b", "~supervised_experiment", "experiment.x=1",
        "++aggregator_kwargs.c=1", "seed=2"]  # fmt: skip
    assert _cli.rewrite_argv(["experiment=quick"], "agent.aggregator_kwargs") == ["experiment=quick"]  # RL: no alias


# ====================================================================== head_grads
class _Tiny(torch.nn.Module):
    """A shared trunk and one linear head per task (the heads are what ``head_grads`` is about)."""

    def __init__(self, K: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.trunk = torch.nn.Linear(5, 4)
        self.heads = torch.nn.ModuleList([torch.nn.Linear(4, 1) for _ in range(K)])
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        h = torch.tanh(self.trunk(x))
        return [((head(h).squeeze(1) - y[:, i]) ** 2).mean() * (i + 1) for i, head in enumerate(self.heads)]


def _data(K: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(8, 5, generator=g), torch.randn(8, K, generator=g)


def _grads(model: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    trunk = torch.cat([p.grad.reshape(-1) for p in model.trunk.parameters()])
    return trunk, [torch.cat([p.grad.reshape(-1) for p in h.parameters()]) for h in model.heads]


def _mtrl_backward(model: _Tiny, name: str, kwargs: dict, scale: float, head_grads: str, setup=None):
    agg = make_aggregator(name, **kwargs)
    if setup is not None:
        setup(agg)
    x, y = _data(len(model.heads))
    losses = model.losses(x, y)
    model.zero_grad(set_to_none=True)
    heads = [p for h in model.heads for p in h.parameters()]
    res = aggregate_backward(agg, losses, list(model.trunk.parameters()), heads, scale=scale, head_grads=head_grads)
    return res, torch.stack([v.detach() for v in losses]), _grads(model)


def test_weighted_heads_nashmtl_equal_the_weighted_loss_backward_with_the_shared_clip() -> None:
    """Nash-MTL's code: ``loss = Σ α_i L_i; loss.backward(); clip_grad_norm_(shared, 1)``. α is checked to be the
    bargaining solution (α_i (GGᵀα)_i = 1 on the trunk gradients), then the reference backward is run with it."""
    K = 3
    model = _Tiny(K)
    res, _, (trunk, heads) = _mtrl_backward(model, "nashmtl", {"solver": "newton"}, float(K), "weighted")
    alpha = (res.loss_weights * K).double()
    ref = _Tiny(K)
    x, y = _data(K)
    losses = ref.losses(x, y)
    trunk_params = list(ref.trunk.parameters())
    G = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(v, trunk_params, retain_graph=True)])
                     for v in losses])  # fmt: skip
    A = (G @ G.T).double()
    np.testing.assert_allclose((alpha * (A @ alpha)).numpy(), np.ones(K), rtol=1e-6)  # the Nash solution
    ref.zero_grad(set_to_none=True)
    sum(a * v for a, v in zip(alpha.float(), losses)).backward()
    torch.nn.utils.clip_grad_norm_(list(ref.trunk.parameters()), 1.0)
    ref_trunk, ref_heads = _grads(ref)
    assert float(ref_trunk.norm()) == pytest.approx(1.0, rel=1e-5)  # ‖Σα g‖² = K > 1: the clip is active
    torch.testing.assert_close(trunk, ref_trunk, rtol=1e-4, atol=1e-6)
    for h, r in zip(heads, ref_heads):
        torch.testing.assert_close(h, r, rtol=1e-4, atol=1e-6)  # α_i ∇L_i, not clipped
    # plain heads get ∇L_i instead: different unless α_i = 1
    _, _, (_, plain) = _mtrl_backward(_Tiny(K), "nashmtl", {"solver": "newton"}, float(K), "plain")
    for i, (p, w) in enumerate(zip(plain, heads)):
        torch.testing.assert_close(w, alpha[i].float() * p, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(plain[0], heads[0], rtol=1e-3)


def test_weighted_heads_famo_equal_its_weighted_loss_backward() -> None:
    """FAMO's code: ``z = softmax(w)``, ``c = Σ z_i/L_i``, ``loss = Σ log(L_i) z_i / c``; ``loss.backward()`` (its
    clip runs before the backward and does nothing). With ``grad_scale=1`` the whole update equals it."""
    K = 3
    logits = np.array([0.3, -0.2, 0.5])

    def setup(agg):
        agg.logits = logits.copy()

    model = _Tiny(K)
    res, L, (trunk, heads) = _mtrl_backward(model, "famo", {"gamma": 0.01}, 1.0, "weighted", setup)
    ref = _Tiny(K)
    x, y = _data(K)
    losses = torch.stack(ref.losses(x, y))
    z = torch.softmax(torch.tensor(logits, dtype=losses.dtype), 0)
    D = losses + 1e-8
    c = (z / D).sum().detach()
    ref.zero_grad(set_to_none=True)
    (D.log() * z / c).sum().backward()
    ref_trunk, ref_heads = _grads(ref)
    torch.testing.assert_close(trunk, ref_trunk, rtol=1e-4, atol=1e-6)
    for h, r in zip(heads, ref_heads):
        torch.testing.assert_close(h, r, rtol=1e-4, atol=1e-6)
    assert float(res.weights.sum()) == pytest.approx(1.0)


def test_weighted_heads_of_a_method_without_weights_fail_and_plain_heads_are_unchanged() -> None:
    with pytest.raises(ValueError, match="head_grads=weighted needs task weights"):
        _mtrl_backward(_Tiny(2), "graddrop", {}, 2.0, "weighted")
    # ls with weighted heads at scale K: α_i = 1, the plain gradient
    _, _, (_, w) = _mtrl_backward(_Tiny(2), "ls", {}, 2.0, "weighted")
    _, _, (_, p) = _mtrl_backward(_Tiny(2), "ls", {}, 2.0, "plain")
    for a, b in zip(w, p):
        torch.testing.assert_close(a, b)


# ====================================================================== the papers' evaluation
def _write(path: Path, records: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _dense_records(method: str, n: int, offset: float = 0.0) -> list[dict]:
    """CityScapes-like records; epoch e has mIoU (e + offset)/100 and abs_err 1/e."""
    return [{"epoch": e, "benchmark": "cityscapes", "method": method, "synthetic": False,
             "train_loss": {"segmentation": 2.0 / e, "depth": 1.0 / e},
             "test": {"miou": (e + offset) / 100, "pix_acc": 0.5, "abs_err": 1.0 / e, "rel_err": 30.0},
             "iter_ms": 10.0} for e in range(1, n + 1)]  # fmt: skip


def test_last_10_mean_on_a_hand_made_metric_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = _dense_records("ls", 12)
    test, epochs = E.last_k_mean(recs)
    assert epochs == list(range(3, 13))
    assert test["miou"] == pytest.approx(0.075)  # (3 + ... + 12) / 10 / 100
    assert test["abs_err"] == pytest.approx(sum(1 / e for e in range(3, 13)) / 10)
    s = E.paper_summary(recs, "cityscapes")
    assert s["protocol"] == "mean of the last 10 epochs (epochs 3-12 of 12)" and s["selection"] == "last_k"
    by_hand = M.delta_m({"miou": 0.075, "pix_acc": 0.5, "abs_err": test["abs_err"], "rel_err": 30.0}, "cityscapes")
    assert s["delta_m"] == pytest.approx(by_hand)
    short = E.paper_summary(_dense_records("ls", 4), "cityscapes")
    assert short["protocol"] == "mean of the last 4 epochs (epochs 1-4 of 4, fewer than 10 were run)"
    one = E.paper_summary(_dense_records("ls", 1), "cityscapes")
    assert one["protocol"] == "the last epoch (epoch 1 of 1, fewer than 10 were run)"
    assert E.paper_summary(recs, "cityscapes", last_k=1)["protocol"] == "the last epoch (epoch 12 of 12)"
    # the summary script: last 10 by default, the epochs used printed with each row
    _write(tmp_path / "ls", recs)
    _write(tmp_path / "cagrad", _dense_records("cagrad", 12, offset=1.0))
    supervised_summary = _script("supervised_summary")
    assert supervised_summary.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mean of the last 10 epochs" in out
    row = next(line for line in out.splitlines() if line.startswith("| cagrad"))
    assert "| 3-12 |" in row and "| 0.085 |" in row  # (4 + ... + 13) / 10 / 100


def _celeba_records(val: list[float]) -> list[dict]:
    recs = []
    for e, v in enumerate(val, start=1):
        f1 = {f"f1/{a}": b * (1.0 + 0.01 * e) for a, b in zip(CELEBA_ATTRIBUTES, M.CELEBA_STL_F1)}
        recs.append({"epoch": e, "benchmark": "celeba", "method": "famo", "synthetic": False,
                     "train_loss": {a: 1.0 / e for a in CELEBA_ATTRIBUTES},
                     "test": {"f1_mean": float(np.mean(list(f1.values()))), "acc_mean": 0.9, **f1},
                     "val": {"f1_mean": v}, "iter_ms": 5.0})  # fmt: skip
    return recs


def test_celeba_selects_the_test_f1_at_the_best_validation_epoch(tmp_path: Path, capsys) -> None:
    recs = _celeba_records([0.2, 0.6, 0.4, 0.6, 0.5])  # best validation first reached at epoch 2
    assert E.best_validation_record(recs)["epoch"] == 2
    s = E.paper_summary(recs, "celeba")
    assert s["selection"] == "best_val" and s["epochs"] == [2]
    assert s["protocol"] == "test at the best-validation epoch: epoch 2 of 5 (mean validation F1 0.6000)"
    # every F1 is 2 % above its base at epoch 2: Δm% = −2 (F1 is higher-is-better)
    assert s["delta_m"] == pytest.approx(-2.0)
    _write(tmp_path / "famo", recs)
    supervised_summary = _script("supervised_summary")
    assert supervised_summary.main([str(tmp_path), "--reference", "famo"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| famo"))
    assert "| best 2 |" in row and "| -2.00 |" in row
    with pytest.raises(ValueError, match="no epoch has a finite validation"):
        E.best_validation_record([{"epoch": 1, "test": {}}])


def test_celeba_delta_m_from_hand_computed_bases() -> None:
    # two attributes by hand: mean(−(0.6−0.5)/0.5, −(0.3−0.4)/0.4) · 100 = mean(−0.2, +0.25) · 100 = 2.5
    dm = M.delta_m({"f1/a": 0.6, "f1/b": 0.3}, "celeba", bases={"f1/a": 0.5, "f1/b": 0.4})
    assert dm == pytest.approx(2.5)
    # the built-in bases: FAMO's published single-task F1, in list_attr_celeba.txt order
    bases = M.STL_BASES["celeba"]
    assert len(bases) == 40 and bases["f1/5_o_Clock_Shadow"] == 0.6736886 and bases["f1/Young"] == 0.91907
    assert bases["f1/Bald"] == 0.7205613 and bases["f1/Wearing_Necktie"] == 0.7647628
    half = {k: (b * 1.1 if i < 20 else b * 0.95) for i, (k, b) in enumerate(bases.items())}
    assert M.delta_m(half, "celeba") == pytest.approx((20 * -10.0 + 20 * 5.0) / 40)
    assert M.delta_m_if_known(dict(list(half.items())[:39]), "celeba") is None  # fewer than 40 attributes: none


def test_nash_mtl_nyuv2_example_is_minus_4_047() -> None:
    """SPEC §6's check row (Nash-MTL's published NYUv2 metrics): Δm% = −4.047 unrounded (the paper prints −4.04)."""
    row = {"miou": 0.4013, "pix_acc": 0.6593, "abs_err": 0.5261, "rel_err": 0.2171, "normal_mean": 25.26,
           "normal_median": 20.08, "within_11_25": 0.2840, "within_22_5": 0.5547, "within_30": 0.6815}  # fmt: skip
    assert M.delta_m(row, "nyuv2") == pytest.approx(-4.0468, abs=1e-4)


# ====================================================================== runs
TINY = ["data=synthetic", "model.width=0.0625", "benchmark.synthetic.n_train=8", "benchmark.synthetic.n_val=4",
        "train.torch_threads=1", "train.progress=false", "train.tensorboard=false", "epochs=2"]  # fmt: skip
TINY_SIZE = {"nyuv2": ["benchmark.synthetic.height=32", "benchmark.synthetic.width=64", "optim.batch_size=4"],
             "cityscapes": ["benchmark.synthetic.height=32", "benchmark.synthetic.width=64", "optim.batch_size=4"],
             "celeba": ["benchmark.image_size=[32,32]", "benchmark.synthetic.n_train=32",
                        "benchmark.synthetic.n_test=8", "optim.batch_size=16"]}  # fmt: skip


def _tiny_run(tmp_path: Path, preset: str) -> tuple[dict, float]:
    bench = REFERENCE[preset][0]
    cfg = _sup(f"experiment={preset}", *TINY, *TINY_SIZE[bench], f"out_dir={tmp_path / preset}")
    t0 = time.perf_counter()
    out = trainer.train(cfg, tmp_path)
    return out, time.perf_counter() - t0


@pytest.mark.parametrize("preset", ["famo_celeba", "nashmtl_cityscapes"])
def test_a_preset_run_writes_the_papers_evaluation(tmp_path: Path, preset: str) -> None:
    out, _ = _tiny_run(tmp_path, preset)
    summary = json.loads((Path(out["out_dir"]) / E.SUMMARY_FILE).read_text())
    assert summary == json.loads(json.dumps(out["final"]))
    if preset == "famo_celeba":
        best = E.best_validation_record(out["records"])
        assert summary["selection"] == "best_val" and summary["epochs"] == [best["epoch"]]
        assert summary["test"]["f1_mean"] == pytest.approx(best["test"]["f1_mean"])
        assert math.isfinite(summary["delta_m"])
    else:
        assert summary["protocol"] == "mean of the last 2 epochs (epochs 1-2 of 2, fewer than 10 were run)"
        mean_miou = np.mean([r["test"]["miou"] for r in out["records"]])
        assert summary["test"]["miou"] == pytest.approx(mean_miou)
    assert all(math.isfinite(v) for r in out["records"] for v in r["train_loss"].values())


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_every_preset_runs_on_synthetic_data(tmp_path: Path, preset: str) -> None:
    out, seconds = _tiny_run(tmp_path, preset)
    assert out["epoch"] == 2 and out["skipped"] == 0 and out["final"] is not None
    last = out["records"][-1]["train_loss"]
    assert all(math.isfinite(v) for v in last.values()) and seconds > 0


def _script(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_celeba_bases_from_hand_made_single_task_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``scripts/celeba_stl_bases.py``: task i's base = its test F1 at the epoch of its own best validation F1;
    ``supervised_summary.py --celeba-bases`` then takes Δm% against them."""
    bases_script = _script("celeba_stl_bases")
    for i, attr in enumerate(CELEBA_ATTRIBUTES):
        run = tmp_path / "stl" / str(i)
        # attribute i's validation F1 peaks at epoch 1 + i % 3; the mean F1 (f1_mean) peaks elsewhere (epoch 3)
        recs = [{"epoch": e, "benchmark": "celeba", "method": "stl", "train_loss": {attr: 1.0},
                 "test": {"f1_mean": 0.1 * e, f"f1/{attr}": 0.5 + 0.01 * i + 0.1 * e},
                 "val": {"f1_mean": 0.1 * e, f"f1/{attr}": 1.0 if e == 1 + i % 3 else 0.2}}
                for e in (1, 2, 3)]  # fmt: skip
        _write(run, recs)
        (run / "resolved_config.yaml").write_text(
            f"aggregator: stl\naggregator_kwargs:\n  task: {i}\nbenchmark:\n  name: celeba\n"
        )
    out = tmp_path / "bases.json"
    assert bases_script.main([str(tmp_path / "stl"), "--out", str(out)]) == 0
    bases = json.loads(out.read_text())
    assert len(bases) == 40
    for i, attr in enumerate(CELEBA_ATTRIBUTES):
        assert bases[f"f1/{attr}"] == pytest.approx(0.5 + 0.01 * i + 0.1 * (1 + i % 3))
    # a multi-task run 10 % above every base at its best-validation epoch: Δm% = −10 against these bases
    f1 = {k: v * 1.1 for k, v in bases.items()}
    mt = [{"epoch": 1, "benchmark": "celeba", "method": "famo", "synthetic": False, "train_loss": {"a": 1.0},
           "test": {"f1_mean": 0.5, "acc_mean": 0.9, **f1}, "val": {"f1_mean": 0.5}, "iter_ms": 1.0}]  # fmt: skip
    _write(tmp_path / "mt" / "famo", mt)
    capsys.readouterr()
    assert _script("supervised_summary").main([str(tmp_path / "mt"), "--celeba-bases", str(out)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| famo"))
    assert "| -10.00 |" in row
    # a missing attribute: named, exit status 2
    import shutil

    shutil.rmtree(tmp_path / "stl" / "7")
    assert bases_script.main([str(tmp_path / "stl")]) == 2
    assert "7 (Big_Nose)" in capsys.readouterr().err
