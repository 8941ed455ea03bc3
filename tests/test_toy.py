"""Two-task synthetic benchmark: loss fixtures of SPEC §3, hand-written gradients vs autograd, the CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.toy import STARTS, distance_to_front, losses_and_grads, run_method

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "point, expected",
    [
        ((0.0, 0.0), (0.0, 0.0)),
        ((-8.5, 7.5), (6.5524, 7.9008)),
        ((9.0, 9.0), (7.9439, 6.6915)),
        ((9.0, -1.0), (-8.8311, 2.8143)),
    ],
)
def test_loss_fixtures(point: tuple[float, float], expected: tuple[float, float]) -> None:
    L, _ = losses_and_grads(np.array([point]))
    np.testing.assert_allclose(L[0], expected, atol=1e-4)


def _torch_losses(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    f1_log = torch.log(torch.clamp(torch.abs(0.5 * (-x1 - 7) - torch.tanh(-x2)), min=5e-6)) + 6
    f2_log = torch.log(torch.clamp(torch.abs(0.5 * (-x1 + 3) + torch.tanh(-x2) + 2), min=5e-6)) + 6
    c1 = torch.clamp(torch.tanh(x2 * 0.5), min=0)
    c2 = torch.clamp(torch.tanh(-x2 * 0.5), min=0)
    f1_sq = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    f2_sq = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    return torch.stack([c1 * f1_log + c2 * f1_sq, c1 * f2_log + c2 * f2_sq], -1)


def test_hand_gradients_match_autograd() -> None:
    x = torch.empty(200, 2, dtype=torch.float64).uniform_(-10, 10, generator=torch.Generator().manual_seed(0))
    x = torch.cat([x, torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)])  # the x2 = 0 kink
    x.requires_grad_(True)
    L = _torch_losses(x)
    auto = torch.stack([torch.autograd.grad(L[:, i].sum(), x, retain_graph=True)[0] for i in range(2)], 1)
    L_np, G_np = losses_and_grads(x.detach().numpy())
    np.testing.assert_allclose(L_np, L.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(G_np, auto.numpy(), rtol=1e-9, atol=1e-10)


def test_distance_to_front() -> None:
    d = distance_to_front(np.array([[0.0, -8.3552], [10.0, -8.3552], [0.0, 0.0]]))
    np.testing.assert_allclose(d, [0.0, 3.0, 8.3552])


def test_ls_run_reduces_the_weighted_loss() -> None:
    run = run_method("ls", {}, (1.0, 1.0), steps=3000, lr=1e-2, seed=0, record_every=100)
    L0, _ = losses_and_grads(np.array(STARTS))
    assert run.finals.shape == (5, 2) and run.trajectories.shape[0] == 5
    assert np.all(run.losses.sum(1) < L0.sum(1) - 10.0)


def test_cli_writes_csv_and_plot(tmp_path) -> None:
    out = tmp_path / "toy"
    args = [sys.executable, "-m", "mtrl.toy", "preset=imgrad_fig2", "methods=[ls,imgrad]", "steps=30", "n_jobs=2",
            f"out={out}", "imgrad.a=1.0"]  # fmt: skip
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "toy.csv").open()))
    assert len(rows) == 10
    # results arrive in completion order from 2 workers but land in method x start order
    expected = [(m, s) for m in ("ls", "imgrad") for s in STARTS]
    assert [(r["method"], (float(r["start_x1"]), float(r["start_x2"]))) for r in rows] == expected
    assert all(f"[{i}/10]" in r.stdout for i in range(1, 11))  # one progress line per finished job
    assert {"preset", "method", "start_x1", "start_x2", "final_x1", "final_x2", "L1", "L2"} <= set(rows[0])
    assert (out / "toy_imgrad_fig2.png").stat().st_size > 10_000
    # time per method: wall and CPU seconds (time.process_time of the worker), both in the CSV and the summary
    assert all(float(r["cpu_seconds"]) >= 0 and float(r["seconds"]) > 0 for r in rows)
    assert "(wall / CPU seconds)" in r.stdout and "CPU seconds per method" not in r.stdout


def test_bare_command_runs_nothing_and_says_what_a_preset_would_run(tmp_path) -> None:
    """``python -m mtrl.toy`` alone must not start the 25-job default: it prints the plan, exits 2, writes nothing."""
    r = subprocess.run([sys.executable, "-m", "mtrl.toy"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "no preset given, nothing run" in r.stdout and "25 jobs of 35000 Adam steps" in r.stdout
    assert "python -m mtrl.toy preset=imgrad_fig2" in r.stdout
    assert list(tmp_path.iterdir()) == []  # no output directory, no Hydra run directory


def test_default_output_is_outputs_toy_not_the_committed_results(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "mtrl.toy", "preset=cagrad", "methods=[ls]", "steps=20", "n_jobs=1",
                        "plot=false"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "outputs" / "toy").iterdir()) == ["toy.csv", "trajectories_cagrad.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("preset=nope", "unknown preset"),
        ("methods=[imgard]", "unknown aggregator"),
        ("cagrad.c=-1", "c must be"),
        ("steps=0", "steps"),
    ],
)
def test_cli_bad_input_fails_with_one_line(tmp_path, override: str, message: str) -> None:
    args = [sys.executable, "-m", "mtrl.toy", "preset=imgrad_fig2", override, "n_jobs=1", f"out={tmp_path}"]
    if override.startswith("cagrad"):
        args.append("methods=[cagrad]")
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_toy_config_lists_every_aggregator_and_its_arguments() -> None:
    """``<method>.<kwarg>=`` overrides need every method and argument in configs/toy.yaml."""
    import inspect

    from omegaconf import OmegaConf

    from mtrl._paths import config_dir
    from mtrl.aggregators import AGGREGATORS

    cfg = OmegaConf.load(f"{config_dir()}/toy.yaml")
    for name, cls in AGGREGATORS.items():
        params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "generator")]
        assert name in cfg, name
        assert sorted(cfg[name]) == sorted(params), name


def test_toy_summary_per_method_counts_front_and_mean_distance(tmp_path) -> None:
    """The README's toy column: starts within 0.1 of the front and the mean distance, computed by hand here."""
    path = tmp_path / "toy.csv"
    rows = [("imgrad_fig2", "ls", 0.05, 1.0), ("imgrad_fig2", "ls", 0.5, 3.0), ("cagrad", "ls", 0.0, 2.0),
            ("imgrad_fig2", "mgda", 0.09, 4.0)]  # fmt: skip
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["preset", "method", "dist_front", "dist_opt"])
        w.writerows(rows)
    script = str(Path(__file__).resolve().parents[1] / "scripts" / "toy_summary.py")
    r = subprocess.run([sys.executable, script, "--per-method", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "| method | imgrad_fig2: on front, mean dist. | cagrad: on front, mean dist. |"
    assert lines[2:] == ["| ls | 1/2, 2.00 | 1/1, 2.00 |", "| mgda | 1/1, 4.00 | - |"]
    bad = subprocess.run([sys.executable, script, str(tmp_path / "missing.csv")], capture_output=True, text=True)
    assert bad.returncode != 0 and "toy_summary: error" in bad.stderr
