"""Issue 14 (RL): the optimised SAC update (task-batched per-task gradients, plain backward without an aggregator,
diagnostics every n updates, fused Adam, ...) gives the parameters of the update as it was before
(``tests/_reference_update.py``, a test oracle) for every method of ``scripts/bench_overhead.py``;
``train.torch_threads=auto``."""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mtrl import _threads
from mtrl.agents import MultiTaskSAC, SACConfig
from mtrl.aggregators import AGGREGATORS, make_aggregator
from tests._reference_update import ReferenceSAC

pytestmark = pytest.mark.usefixtures("one_thread")

K, B, RAW, ACT = 3, 8, 6, 2
OBS = RAW + K  # the one-hot task id at the end
METHODS = ("ls", "imgrad", "cagrad", "pcgrad", "nashmtl", "famo")
REPO = Path(__file__).resolve().parents[1]


def _agent(method: str, seed: int = 0, reference: bool = False, **kw) -> MultiTaskSAC:
    """mtrl's agent, or (``reference``) the oracle :class:`ReferenceSAC`, on the same initial weights."""
    torch.manual_seed(seed)
    cfg = SACConfig(hidden_dim=16, num_layers=2, **kw)
    aggs = {}
    for i, loss in enumerate(cfg.aggregate_on):
        aggs[loss] = make_aggregator(method)
        aggs[loss].seed(i)
    return (ReferenceSAC if reference else MultiTaskSAC)(OBS, ACT, K, cfg, aggs)


def _batch(t: int, weighted: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + t)

    def obs() -> torch.Tensor:
        x = torch.randn(K, B, OBS, generator=g)
        x[..., RAW:] = torch.eye(K)[:, None, :]
        return x

    b = {"obs": obs(), "action": torch.rand(K, B, ACT, generator=g) * 2 - 1, "reward": torch.randn(K, B, generator=g),
         "next_obs": obs(), "terminated": (torch.rand(K, B, generator=g) < 0.2).float()}  # fmt: skip
    if weighted:  # uniform replay's weights: 1/n_k on the first n_k samples, 0 on padding
        n = torch.tensor([3, 8, 5])
        b["weight"] = (torch.arange(B)[None] < n[:, None]).float() / n[:, None]
    return b


def _tensors(ag: MultiTaskSAC) -> dict[str, torch.Tensor]:
    out = {f"{net}.{k}": v for net in ("actor", "q1", "q2", "q1_target", "q2_target")
           for k, v in getattr(ag, net).state_dict().items()}  # fmt: skip
    out["log_alpha"] = ag.log_alpha.detach()
    return out


def _run(ag: MultiTaskSAC, n: int, weighted: bool = False) -> list:
    gen = torch.Generator().manual_seed(7)
    return [ag.update(_batch(t, weighted), gen) for t in range(n)]


def _assert_same_run(fast: MultiTaskSAC, ref: MultiTaskSAC, n: int, weighted: bool = False, every: int = 1) -> None:
    start = {k: v.clone() for k, v in _tensors(ref).items()}
    infos_f, infos_r = _run(fast, n, weighted), _run(ref, n, weighted)
    moved = 0.0
    for k, v in _tensors(ref).items():
        torch.testing.assert_close(_tensors(fast)[k], v, atol=2e-5, rtol=1e-4, msg=k)
        moved = max(moved, float((v - start[k]).abs().max()))
    assert moved > 1e-3  # the updates moved the parameters far more than the tolerance
    assert fast.n_updates == ref.n_updates == n and fast.n_skipped == ref.n_skipped
    for t, (f, r) in enumerate(zip(infos_f, infos_r)):
        assert f.diagnostics == (t % every == 0) and r.diagnostics
        assert set(f.results) == set(r.results)
        for name, res in r.results.items():
            assert f.results[name].skipped == res.skipped
            scale = float(res.direction.detach().abs().max())  # FAMO amplifies rounding: its weights follow loss ratios
            torch.testing.assert_close(f.results[name].direction, res.direction, atol=1e-3 * scale + 1e-7, rtol=1e-3)
            if f.diagnostics:  # the full call's statistics, as the reference logs them
                for key in ("imbalance_ratio", "cos_theta", "conflict_frac", "grad_norms", "weights"):
                    if res.stats.get(key) is None:  # a method that is no weighting of the rows has no weights
                        assert f.results[name].stats.get(key) is None, key
                        continue
                    np.testing.assert_allclose(f.results[name].stats.get(key), res.stats.get(key), rtol=1e-4,
                                               atol=1e-6, err_msg=f"{t} {name} {key}")  # fmt: skip
        if f.diagnostics:
            np.testing.assert_allclose(f.critic_losses, r.critic_losses, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(f.actor_losses, r.actor_losses, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(f.alphas, r.alphas, rtol=1e-5)
            for key in ("critic_loss", "actor_loss", "alpha_loss", "entropy"):
                assert f.metrics[key] == pytest.approx(r.metrics[key], rel=1e-4, abs=1e-6)
        else:
            assert f.critic_losses is None and not f.metrics
    # the methods' own state (warm starts, FAMO's logits: each Adam step on them is ±0.025 whatever the size of
    # their gradient, a difference of loss ratios, so rounding in the losses shows there at ~1e-5)
    for name, agg in ref.aggregators.items():
        sf, sr = fast.aggregators[name].state_dict(), agg.state_dict()
        assert sf.keys() == sr.keys()
        for key in sr:
            if isinstance(sr[key], (int, float, list)) and key != "rng":
                np.testing.assert_allclose(np.asarray(sf[key], dtype=float), np.asarray(sr[key], dtype=float),
                                           rtol=1e-3, atol=1e-4, err_msg=f"{name}.{key}")  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
def test_optimised_update_equals_the_reference_update(method):
    """12 updates with ``diagnostics_every=5``: same parameters, targets, α, directions, logged statistics."""
    fast = _agent(method, diagnostics_every=5)
    ref = _agent(method, reference=True)
    _assert_same_run(fast, ref, 12, every=5)
    # between diagnostic updates, ls and famo (weights from the losses alone) never formed G; the others did
    assert fast._reads_gradients == (set() if method in ("ls", "famo") else {"critic", "actor"})


@pytest.mark.parametrize("method", sorted(set(AGGREGATORS) - set(METHODS)) + ["igbv1+nashmtl", "dwa+imgrad"])
def test_optimised_update_equals_the_reference_update_other_methods(method):
    """Every other registered method and two compositions: one-hot weights (stl: zero weights, the second backward
    for the heads), random (rlw), loss-based with state (uw, dwa, igb), K-space solvers (mgda, imtl, imgrad_nash),
    methods that are no weighting (graddrop, moco) and wrappers (threshold, compositions: their full call)."""
    _assert_same_run(_agent(method, diagnostics_every=4), _agent(method, reference=True), 9, every=4)


@pytest.mark.parametrize("method", ["ls", "imgrad", "famo"])
def test_nan_between_diagnostic_updates_skips_like_the_reference(method):
    """A NaN reward at a non-diagnostic update: the critic step is skipped and counted as in the reference, the
    method's state is untouched, later updates equal the reference's."""
    fast = _agent(method, diagnostics_every=4)
    ref = _agent(method, reference=True)
    gen_f, gen_r = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for t in range(7):
        b = _batch(t)
        if t == 2:
            b["reward"][1, 0] = float("nan")
        inf, inr = fast.update(b, gen_f), ref.update({k: v.clone() for k, v in b.items()}, gen_r)
        assert inf.results["critic"].skipped == inr.results["critic"].skipped == (t == 2)
    assert fast.n_skipped == ref.n_skipped and fast.n_skipped["critic"] == 1
    for name in ("critic", "actor"):
        assert fast.aggregators[name].n_calls == ref.aggregators[name].n_calls == 7
        assert fast.aggregators[name].n_skipped == ref.aggregators[name].n_skipped
    for k, v in _tensors(ref).items():
        torch.testing.assert_close(_tensors(fast)[k], v, atol=2e-5, rtol=1e-4, msg=k)


@pytest.mark.parametrize(
    "method, kw, weighted",
    [
        ("imgrad", {"aggregate_on": ("critic",)}, False),  # the actor's plain backward of the mean loss
        ("ls", {"aggregate_on": ()}, True),  # no aggregator at all (IGBv2's weight-agent case), uniform replay
        ("mgda", {"alpha": "shared", "aggregate_on": ("critic", "actor", "alpha")}, False),
        ("imgrad", {"arch": "shared"}, True),
        ("imgrad", {"arch": "independent"}, False),  # nothing shared: no aggregator call
        ("imgrad", {"arch": "sm"}, False),  # vmap of forward_one along the expanded task axis
        ("cagrad", {"arch": "care"}, False),
        ("imgrad", {"per_task_grads": "vmap"}, False),
        ("pcgrad", {"per_task_grads": "loop"}, False),
    ],
)
def test_optimised_update_equals_the_reference_update_variants(method, kw, weighted):
    fast = _agent(method, diagnostics_every=3, **kw)
    ref = _agent(method, reference=True, **kw)
    _assert_same_run(fast, ref, 7, weighted=weighted, every=3)


def test_the_comparison_can_fail():
    """The check above is not vacuous: a different seed (or a one-ulp different learning rate) is caught."""
    with pytest.raises(AssertionError):
        _assert_same_run(_agent("imgrad", diagnostics_every=5), _agent("imgrad", seed=1, reference=True), 3)
    with pytest.raises(AssertionError):
        _assert_same_run(_agent("ls", lr=3.1e-4), _agent("ls", reference=True), 5)


def test_acting_equals_the_reference():
    fast, ref = _agent("ls"), _agent("ls", reference=True)
    obs = _batch(0)["obs"][:, 0].numpy()
    for det in (True, False):
        a, b = (ag.act(obs, torch.Generator().manual_seed(4), deterministic=det) for ag in (fast, ref))
        assert a.shape == (K, ACT)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_diagnostics_every_changes_nothing_but_what_is_reported():
    """Bit for bit the same parameters and aggregator state with diagnostics every update or every 4th."""
    a, b = _agent("imgrad", diagnostics_every=1), _agent("imgrad", diagnostics_every=4)
    ia, ib = _run(a, 9), _run(b, 9)
    for k, v in _tensors(a).items():
        assert torch.equal(v, _tensors(b)[k]), k
    assert a.aggregators["critic"].state_dict() == b.aggregators["critic"].state_dict()
    assert [i.diagnostics for i in ib] == [t % 4 == 0 for t in range(9)] and all(i.diagnostics for i in ia)
    assert "cos_theta" in ib[4].results["critic"].stats and "cos_theta" not in ib[5].results["critic"].stats
    with pytest.raises(ValueError, match="diagnostics_every"):
        _agent("ls", diagnostics_every=0)


def test_checkpoint_round_trip_keeps_fused_adam_and_continues_identically():
    a = _agent("cagrad")
    _run(a, 3)
    b = _agent("cagrad", seed=5)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # (a checkpoint file shares no tensors with the run)
    assert all(g.get("fused") == a.actor_opt.param_groups[0].get("fused") for g in b.critic_opt.param_groups)
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in range(3):
        a.update(_batch(t), gen_a)
        b.update(_batch(t), gen_b)
    for k, v in _tensors(a).items():
        assert torch.equal(v, _tensors(b)[k]), k
    ref = _agent("cagrad", reference=True)  # a checkpoint of the reference (default Adam) loads too
    ref.load_state_dict(copy.deepcopy(a.state_dict()))
    a.load_state_dict(copy.deepcopy(ref.state_dict()))
    _run(a, 1)


@pytest.mark.slow
def test_compile_path_equals_eager():
    """``agent.compile=true`` (torch.compile of the task-batched losses) gives the eager parameters (about a minute
    of compiling on 2 CPU cores, hence ``slow``)."""
    if not hasattr(torch, "compile") or sys.platform == "win32":
        pytest.skip("torch.compile is not available here")
    eager, comp = _agent("imgrad"), _agent("imgrad", compile=True)
    t0 = time.perf_counter()
    try:
        _run(comp, 3)
    except Exception as err:  # noqa: BLE001 (no working compiler backend on this machine)
        pytest.skip(f"torch.compile failed here: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    _run(eager, 3)
    for k, v in _tensors(eager).items():
        torch.testing.assert_close(_tensors(comp)[k], v, atol=2e-5, rtol=1e-4, msg=k)
    print(f"compiled 3 updates in {time.perf_counter() - t0:.0f} s")


# ------------------------------------------------------------------------------------------ train.torch_threads
@pytest.mark.parametrize("value", [0, -2, "many", 1.5, True, "2"])
def test_bad_torch_threads_are_refused_in_one_line(value):
    with pytest.raises(ValueError, match="train.torch_threads must be auto, null"):
        _threads.check_torch_threads(value)
    for ok in ("auto", None, 1, 3):
        _threads.check_torch_threads(ok)


def test_auto_threads_never_exceed_the_allowance(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = _threads.resolve_torch_threads("auto")
    assert 1 <= n <= cpus and n == _threads.cpu_allowance()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")  # a Slurm job's --cpus-per-task=1 on a node with more cores
    assert _threads.resolve_torch_threads("auto") == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")  # set but empty (not a Slurm value): ignored
    assert _threads.resolve_torch_threads("auto") == n
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.resolve_torch_threads("auto") == 1
    assert _threads.resolve_torch_threads(3) == 3 and _threads.resolve_torch_threads(None) is None


def test_cgroup_quota_is_read(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _threads._cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _threads._cgroup_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _threads._cgroup_quota(v1) == 4.0
    assert _threads._cgroup_quota(tmp_path / "none") is None


def test_launcher_share_divides_by_the_jobs_per_machine():
    share = _threads.launcher_share
    assert share(8, None) == 8  # a single run
    assert share(8, OmegaConf.create({"n_jobs": 2})) == 4  # hydra/launcher=local (joblib)
    assert share(2, OmegaConf.create({"n_jobs": 4})) == 1  # never below 1
    assert share(8, OmegaConf.create({"n_jobs": -1})) == max(1, 8 // (os.cpu_count() or 1))
    assert share(8, OmegaConf.create({"ray": {"remote": {"num_cpus": 2}}})) == 2  # Ray: CPUs per run
    assert share(2, OmegaConf.create({"ray": {"remote": {"num_cpus": 4}}})) == 2  # never above the allowance
    assert share(8, OmegaConf.create({"partition": "gpu"})) == 8  # slurm/basic: one job at a time


def test_train_config_checks_and_applies_torch_threads(monkeypatch):
    from hydra import compose, initialize_config_dir

    from mtrl._paths import config_dir
    from mtrl.train import ConfigError, check_config

    def cfg(*o: str):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name="train", overrides=["env=fake", "env.num_tasks=3", *o])

    assert cfg().train.torch_threads == "auto" and cfg().agent.diagnostics_every >= 1
    check_config(cfg())
    check_config(cfg("train.torch_threads=2"))
    for bad, msg in (("train.torch_threads=0", "train.torch_threads"), ("train.torch_threads=lots", "torch_threads"),
                     ("agent.diagnostics_every=0", "agent.diagnostics_every"),
                     ("agent.per_task_grads=fast", "per_task_grads must be one of batched, vmap, loop"),
                     ("agent.compile=maybe", "agent.compile")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            check_config(cfg(bad))
    n = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert _threads.set_torch_threads("auto") == 1
    finally:
        torch.set_num_threads(n)


def test_bench_overhead_script_runs(tmp_path, capsys):
    """``scripts/bench_overhead.py`` (tiny size, 2 rounds): the lean reference and mtrl rows, ratios, the file."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_overhead
    finally:
        sys.path.remove(str(REPO / "scripts"))
    n = torch.get_num_threads()
    out = tmp_path / "o.txt"
    try:
        bench_overhead.main(["--sizes", "tiny", "--methods", "ls,imgrad", "--rounds", "2", "--warmup", "1",
                             "--diagnostics-every", "1,10", "--with-reference", "--out", str(out)])  # fmt: skip
    finally:
        torch.set_num_threads(n)
    text = out.read_text()
    for row in ("lean ", "lean_fused", "ls/1", "imgrad/10", "ls/ref", "ratio tiny ls/10/lean:"):
        assert row in text, row
    with pytest.raises(SystemExit):
        bench_overhead.main(["--sizes", "huge"])
    capsys.readouterr()
