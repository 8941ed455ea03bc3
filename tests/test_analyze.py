"""Issue 22: the raw diagnostics file (format, resume without duplicates) and ``mtrl.analyze`` on synthetic
diagnostics with known answers (failure rate per bin, rank correlation, progress ratios, the decision rule)."""

from __future__ import annotations

import filecmp
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtrl import analyze as A
from mtrl.diagnostics_file import DiagnosticsWriter, read_stream, row_dtype, truncate

REPO = Path(__file__).resolve().parents[1]


# ====================================================================== the file
def test_rows_round_trip_and_a_resume_cuts_later_rows_and_a_torn_record(tmp_path):
    w = DiagnosticsWriter(tmp_path, "critic", ["a", "b"], capacity=3)  # a full buffer is written at once
    for i in range(1, 8):
        w.add(i, 10 * i, {"grad_norms": [1.0, float(i)], "imbalance_ratio": float(i), "pareto_failure": i % 2,
                          "cos_to_direction": [0.5, -0.5]}, losses=[i, 2 * i])  # fmt: skip
    w.flush()
    schema, rows = read_stream(tmp_path, "critic")
    assert schema["tasks"] == ["a", "b"] and schema["row_bytes"] == row_dtype(2).itemsize == 16 + 4 * (4 * 2 + 4)
    assert rows["step"].tolist() == [10, 20, 30, 40, 50, 60, 70]
    assert rows["loss"][2].tolist() == [3.0, 6.0] and rows["grad_norm"][6].tolist() == [1.0, 7.0]
    assert np.isnan(rows["weight"]).all() and np.isnan(rows["cos_theta"]).all()  # not reported: NaN
    path = tmp_path / "diagnostics" / "critic.bin"
    with open(path, "ab") as f:  # a kill in the middle of a write
        f.write(b"\x01\x02\x03")
    assert truncate(path, row_dtype(2), 45) == 4
    assert read_stream(tmp_path, "critic")[1]["step"].tolist() == [10, 20, 30, 40]
    DiagnosticsWriter(tmp_path, "critic", ["a", "b"], keep_up_to=20)  # a resume from step 20
    assert read_stream(tmp_path, "critic")[1]["step"].tolist() == [10, 20]
    DiagnosticsWriter(tmp_path, "critic", ["a", "b"])  # a fresh start
    assert len(read_stream(tmp_path, "critic")[1]) == 0


@pytest.mark.usefixtures("one_thread")
def test_rl_resumed_run_writes_the_same_raw_diagnostics_as_an_uninterrupted_one(tmp_path):
    from mtrl.train import train

    from .test_rl_train import TINY, cfg_of

    base = ["train.steps_per_task=60", "agent.aggregator=imgrad", "train.checkpoint_every=20",
            "train.keep_checkpoints=5", "agent.diagnostics_every=2", "train.log_every=10"]  # fmt: skip
    full, split = tmp_path / "full", tmp_path / "split"
    train(cfg_of(*TINY, *base), full)
    train(cfg_of(*TINY, *base), split)  # it ran to 60: rows after 20 are the "lost future" of a resume from 20
    train(cfg_of(*TINY, *base, f"resume={split / 'checkpoints' / 'ckpt_0000000020.pt'}"), split)
    for s in ("critic", "actor"):
        _, rows = read_stream(full, s)
        # 50 updates from step 10 (warm-up) to 60, one row every 2nd update; critic and actor apart
        assert len(rows) == 26 and rows["step"][0] == 10 and rows["step"][-1] == 60
        assert np.all(np.diff(rows["update"]) == 2) and np.isfinite(rows["imbalance_ratio"]).all()
        assert filecmp.cmp(full / "diagnostics" / f"{s}.bin", split / "diagnostics" / f"{s}.bin", shallow=False)
    c, a = read_stream(full, "critic")[1], read_stream(full, "actor")[1]
    assert not np.array_equal(c["grad_norm"], a["grad_norm"])


@pytest.mark.slow
def test_supervised_crash_then_resume_writes_each_iteration_once(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    from mtrl._paths import config_dir
    from mtrl.supervised import trainer

    over = ["data=synthetic", "model.width=0.125", "benchmark.synthetic.n_train=8", "benchmark.synthetic.n_val=4",
            "benchmark.synthetic.height=32", "benchmark.synthetic.width=64", "optim.batch_size=2",
            "train.torch_threads=1", "train.progress=false", "train.tensorboard=false", "train.log_every=1",
            "aggregator=cagrad", "epochs=2"]  # fmt: skip

    def cfg(out: Path, *extra: str):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name="supervised", overrides=[*over, f"out_dir={out}", *extra])

    trainer.train(cfg(tmp_path / "full"), tmp_path)
    real, calls = trainer.aggregate_backward, {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2, after rows 5 and 6 were written (log_every=1) past the epoch-1 checkpoint
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "aggregate_backward", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.train(cfg(tmp_path / "crash"), tmp_path)
    monkeypatch.setattr(trainer, "aggregate_backward", real)
    assert read_stream(tmp_path / "crash", "shared")[1]["step"].tolist() == [1, 2, 3, 4, 5, 6]
    trainer.train(cfg(tmp_path / "crash", "resume=true"), tmp_path)
    rows = read_stream(tmp_path / "crash", "shared")[1]
    assert rows["step"].tolist() == list(range(1, 9))
    assert filecmp.cmp(tmp_path / "full" / "diagnostics" / "shared.bin",
                       tmp_path / "crash" / "diagnostics" / "shared.bin", shallow=False)  # fmt: skip


# ====================================================================== synthetic runs with known answers
def _run(root: Path, method: str, seed: int, rows: dict[str, np.ndarray], tasks=("t1", "t2")) -> Path:
    """A supervised-looking run directory whose diagnostics are ``rows`` (arrays of n values / n x K)."""
    d = root / f"{method}_{seed}"
    d.mkdir(parents=True)
    conf = {"benchmark": {"name": "nyuv2"}, "data": {"synthetic": True}, "aggregator": method,
            "aggregator_kwargs": {}, "seed": seed}  # fmt: skip
    (d / "resolved_config.yaml").write_text(yaml.safe_dump(conf))
    w = DiagnosticsWriter(d, "shared", list(tasks), x="iteration")
    n = len(rows["imbalance_ratio"])
    for i in range(n):
        stats = {
            "imbalance_ratio": rows["imbalance_ratio"][i],
            "pareto_failure": rows["pareto_failure"][i],
            "cos_theta": rows["cos_theta"][i],
            "cos_to_direction": rows["cos_to_direction"][i],
            "grad_norms": [1.0] * len(tasks),
            "weights": rows.get("weights", [[0.5] * len(tasks)] * n)[i],
        }
        w.add(i + 1, i + 1, stats, rows["loss"][i])
    w.flush()
    return d


def _design(n: int = 400, rng: np.random.Generator | None = None, rate_high: float = 0.5) -> dict[str, np.ndarray]:
    """Half the rows at r = 2, half at r = 200 (alternating); failures: none at r = 2, every other high row at
    ``rate_high`` = 0.5; cos θ a decreasing function of r (ρ = −1); task 1's loss halves after the first 10% of
    training, task 2's stays: r_1 = 0.5, r_2 = 1."""
    i = np.arange(n)
    high = i % 2 == 1
    ratio = np.where(high, 200.0, 2.0) * (1 + 1e-3 * i / n)  # distinct values, same bins
    fail = np.where(high, ((i // 2) % int(round(1 / rate_high)) == 0).astype(float), 0.0) if rate_high else 0 * i
    cos_theta = 1.0 / ratio
    cos_d = np.where(fail[:, None] > 0, np.array([[-0.2, 0.9]]), np.array([[0.3, 0.9]]))
    loss = np.stack([np.where(i < n // 10, 2.0, 1.0), np.full(n, 3.0)], 1)
    return {"imbalance_ratio": ratio, "pareto_failure": fail, "cos_theta": cos_theta, "cos_to_direction": cos_d,
            "loss": loss}  # fmt: skip


def test_known_failure_rate_per_bin_correlation_and_progress(tmp_path):
    for seed in range(3):
        _run(tmp_path / "runs", "cagrad", seed, _design())
        _run(tmp_path / "runs", "imgrad", seed, _design(rate_high=0.0))
        _run(tmp_path / "runs", "nashmtl", seed, _design(rate_high=0.0))
    res = A.analyze([tmp_path / "runs"], tmp_path / "out", bins=2, boot=200, progress_bins=10)
    t = res["tables"]
    binned = {(r["method"], r["bin"]): r for r in t["pareto_binned"]}
    assert binned[("cagrad", 0)]["failure_rate"] == 0.0 and binned[("cagrad", 1)]["failure_rate"] == 0.5
    assert binned[("imgrad", 1)]["failure_rate"] == 0.0
    pareto = {r["method"]: r for r in t["pareto"]}
    assert pareto["cagrad"]["failure_rate"] == pytest.approx(0.25)
    assert pareto["cagrad"]["high_minus_low"] == pytest.approx(0.5)
    ct = {r["method"]: r for r in t["cos_theta"]}
    assert ct["cagrad"]["spearman_mean_over_seeds"] == pytest.approx(-1.0)
    assert ct["cagrad"]["boot_hi"] == pytest.approx(-1.0)
    prog = {(r["method"], r["task"]): r["final_r"] for r in t["progress"]}
    assert prog[("cagrad", "t1")] == pytest.approx(0.5) and prog[("cagrad", "t2")] == pytest.approx(1.0)
    assert prog[("cagrad", "(spread max-min)")] == pytest.approx(0.5)
    cosphi = {(r["method"], r["task"]): r for r in t["cos_phi"]}
    assert cosphi[("cagrad", "t1")]["frac_negative"] == pytest.approx(0.25)
    assert cosphi[("cagrad", "t1")]["mean_cos_phi"] == pytest.approx(0.75 * 0.3 + 0.25 * -0.2)
    v = {x.claim.split(": ", 1)[1]: x for x in res["verdicts"]}
    assert v["cagrad fails more often as imbalance grows (§4.2)"].verdict == "supports"
    assert v["cagrad has Pareto failures (§4.2, Fig. 4a-b)"].verdict == "supports"
    assert v["imgrad has fewer Pareto failures than cagrad (§4.2)"].verdict == "supports"
    assert v["cos θ correlates negatively with the imbalance ratio under imgrad (§5.1)"].verdict == "supports"
    # no failure in 1200 updates: a rate below ~0.3% (Wilson), not "no failures" (the seeds agreeing exactly must
    # not give a zero-width interval), and no difference between two such methods
    nash = v["nashmtl has Pareto failures (§4.2, Fig. 4a-b)"]
    assert nash.verdict == "inconclusive" and nash.value == 0.0 and 0.0 < nash.hi < 0.004
    assert v["imgrad has fewer Pareto failures than nashmtl (§4.2)"].verdict == "inconclusive"
    # imgrad has no failure at all: a trend cannot be measured, whatever its interval
    assert v["imgrad does not fail more often as imbalance grows (§4.2)"].verdict == "inconclusive"
    md = (tmp_path / "out" / "analysis.md").read_text()
    assert "Decision rule" in md and "| **supports** |" in md
    for fig in res["figures"]:
        assert (tmp_path / "out" / f"{fig}.png").stat().st_size > 0 and (tmp_path / "out" / f"{fig}.pdf").exists()


def test_decision_rule_is_inconclusive_on_data_that_cannot_tell(tmp_path):
    # two seeds only: the same strong effect is not enough
    for seed in range(2):
        _run(tmp_path / "two", "cagrad", seed, _design())
    res = A.analyze([tmp_path / "two"], tmp_path / "o2", bins=2, boot=100, figures=False)
    assert {v.verdict for v in res["verdicts"]} == {"inconclusive"}
    assert all("seed(s) < 3" in v.reason for v in res["verdicts"])
    # three seeds whose per-seed effects disagree in sign: the interval straddles 0
    rng = np.random.default_rng(0)
    for seed, rate in enumerate((0.5, 0.0, 0.25)):
        d = _design(rate_high=rate)
        if seed == 1:  # failures at low imbalance instead
            d["pareto_failure"] = np.where(np.arange(400) % 2 == 0, (rng.random(400) < 0.5).astype(float), 0.0)
        _run(tmp_path / "mixed", "cagrad", seed, d)
    res = A.analyze([tmp_path / "mixed"], tmp_path / "o3", bins=2, boot=100, figures=False)
    v = next(x for x in res["verdicts"] if "fails more often" in x.claim)
    assert v.verdict == "inconclusive" and v.lo < 0 < v.hi
    # the rule itself
    assert A.decide("c", "s", (0.3, 0.1, 0.5), ">", 0.0, seeds=3).verdict == "supports"
    assert A.decide("c", "s", (-0.3, -0.5, -0.1), ">", 0.0, seeds=3).verdict == "contradicts"
    assert A.decide("c", "s", (0.3, 0.1, 0.5), ">", 0.0, seeds=3, per_update_ok=False).verdict == "inconclusive"
    assert A.decide("c", "s", (0.01, -0.02, 0.04), "no_increase", seeds=3).verdict == "supports"
    assert A.decide("c", "s", (0.01, -0.02, 0.08), "no_increase", seeds=3).verdict == "inconclusive"
    assert A.decide("c", "s", (0.3, math.nan, math.nan), ">", 0.0, seeds=5).verdict == "inconclusive"


def test_intervals_and_correlation_have_their_textbook_values():
    m, lo, hi = A.mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.3027
    assert A.spearman(np.arange(10.0), np.arange(10.0) ** 3) == pytest.approx(1.0)
    assert A.spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4])) == pytest.approx(0.8)
    d, dlo, dhi = A.welch_diff([1.0, 1.1, 0.9], [0.0, 0.1, -0.1])
    assert d == pytest.approx(1.0) and dlo > 0


def test_cli_finds_nested_runs_and_refuses_a_missing_path_in_one_line(tmp_path):
    for seed in range(3):
        _run(tmp_path / "sweep" / "a=1" / f"seed={seed}", "ls", seed, _design())
    assert len(A.find_runs([tmp_path / "sweep"])) == 3
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "mtrl.analyze", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "no such path" in p.stderr


@pytest.mark.usefixtures("one_thread")
def test_runs_without_the_raw_file_are_read_from_tensorboard_window_means(tmp_path):
    from mtrl.train import train

    from .test_rl_train import TINY, cfg_of

    over = ["train.steps_per_task=40", "agent.aggregator=cagrad", "logger=tensorboard", "logger.diagnostics_file=false",
            "train.log_every=10"]  # fmt: skip
    train(cfg_of(*TINY, *over), tmp_path / "run")
    assert not (tmp_path / "run" / "diagnostics").exists()
    run = A.load_run(tmp_path / "run")
    assert run is not None and run.kind == "rl" and run.method == "cagrad" and set(run.streams) == {"critic", "actor"}
    st = run.streams["critic"]
    assert st.source == "tensorboard" and st.step.tolist() == [10, 20, 30, 40] and len(st.tasks) == 3
    assert st.cols["grad_norm"].shape == (4, 3) and np.isfinite(st.cols["imbalance_ratio"]).all()
    # a window mean cannot decide a per-update claim
    v = A.decide("c", "s", (0.3, 0.1, 0.5), ">", 0.0, seeds=3, per_update_ok=st.source == "raw")
    assert v.verdict == "inconclusive" and "window means" in v.reason


def _toy_start(root: Path, method: str, kwargs: dict, start: int, dist: float) -> None:
    d = root / f"{method}_{'_'.join(f'{k}{v}' for k, v in kwargs.items())}" / f"start_{start}"
    d.mkdir(parents=True)
    conf = {"toy": {"preset": "imgrad_fig2", "method": method, "kwargs": kwargs, "start": start}}
    (d / "resolved_config.yaml").write_text(yaml.safe_dump(conf))
    (d / "outcome.json").write_text(f'{{"dist_opt": {dist}}}')
    rows = _design(n=20)
    w = DiagnosticsWriter(d, "toy", ["L1", "L2"], x="Adam step")
    for i in range(20):
        w.add(i + 1, i + 1, {"imbalance_ratio": rows["imbalance_ratio"][i], "pareto_failure": 0.0}, rows["loss"][i])
    w.flush()


def test_sensitivity_finds_a_dependence_and_a_threshold_that_beats_vanilla(tmp_path):
    # threshold 1 (vanilla) ~ 5, threshold 10 ~ 1 (better: lower distance), threshold 1e6 (LS) ~ 9; 4 starts each
    for start in range(4):
        for thr, dist in ((1, 5.0), (10, 1.0), (1000000, 9.0)):
            _toy_start(tmp_path / "thr", "threshold", {"base": "imgrad", "threshold": thr}, start, dist + 0.1 * start)
        for a in (0.5, 1.5):  # imgrad's a: no effect
            _toy_start(tmp_path / "mu", "imgrad", {"a": a}, start, 3.0 + 0.1 * start)
    res = A.analyze([tmp_path], tmp_path / "out", boot=100, figures=False)
    v = {x.claim: x for x in res["verdicts"]}
    varies = v["toy/imgrad_fig2: the outcome of threshold varies with threshold (§4.3 Fig. 5a for the threshold; "
               "μ sensitivity for imgrad a/c)"]  # fmt: skip
    assert varies.verdict == "supports" and varies.value < 0.05
    beats = next(x for x in res["verdicts"] if "beats the vanilla" in x.claim)
    assert beats.verdict == "supports" and beats.value == pytest.approx(4.0)
    flat = next(x for x in res["verdicts"] if "imgrad varies with a" in x.claim)
    assert flat.verdict == "inconclusive"
    sens = {(r["param"], r["value"]): r for r in res["tables"]["sensitivity"]}
    assert sens[("threshold", 10)]["outcome"] == pytest.approx(1.15) and sens[("threshold", 10)]["runs"] == 4


@pytest.mark.usefixtures("one_thread")
def test_bench_overhead_times_the_update_with_and_without_the_raw_file(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_overhead
    finally:
        sys.path.remove(str(REPO / "scripts"))
    out = tmp_path / "o.txt"
    bench_overhead.main(["--sizes", "tiny", "--methods", "imgrad", "--rounds", "12", "--warmup", "0",
                         "--with-diagnostics-file", "--out", str(out)])  # fmt: skip
    text = out.read_text()
    for row in ("imgrad ", "imgrad/log", "imgrad/raw", "ratio tiny imgrad/raw/lean:"):
        assert row in text, row
