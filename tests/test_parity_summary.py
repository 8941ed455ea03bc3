"""The parity harness's summary (benchmarks/peers/parity.py): each one-number row equals the value computed by hand
from the evaluations, per seed, in seed order (the numbers docs/parity.md reads off)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).parents[1] / "benchmarks" / "peers" / "parity.py"
_spec = importlib.util.spec_from_file_location("parity", _PATH)
parity = importlib.util.module_from_spec(_spec)
sys.modules["parity"] = parity
_spec.loader.exec_module(parity)


def _row(text: str, label: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")[1:]]


def test_summary_rows_are_the_hand_computed_means_and_first_hits():
    curve = {5_000: 0.0, 10_000: 0.2, 15_000: 0.4, 20_000: 0.9, 25_000: 0.6, 30_000: 1.0, 35_000: 1.0}
    late = {st: (1.0 if st >= 30_000 else 0.0) for st in curve}
    data = {"sb3": {"t": {1: curve, 2: late}}, "mtrl": {"t": {1: late}}}
    text = parity.table(data)
    ge10, ge20, last5, first = (_row(text, k) for k in ("mean ≥10k", "mean ≥20k", "last 5", "first ≥0.9"))
    # sb3 seed 1: mean of 0.2, 0.4, 0.9, 0.6, 1, 1 = 0.683; from 20k: 0.9, 0.6, 1, 1 = 0.875; last 5: 0.4 .. 1 = 0.78
    # sb3 seed 2: 2/6 = 0.333 from 10k, 2/4 = 0.5 from 20k, 2/5 = 0.4 over the last five
    assert ge10[0].endswith("(0.68, 0.33)") and ge10[0].startswith("0.51 ")
    assert ge20[0].endswith("(0.88, 0.50)") and ge20[0].startswith("0.69 ")
    assert last5[0].endswith("(0.78, 0.40)") and last5[0].startswith("0.59 ")
    assert first[0] == "25.0k (2 of 2: 20k, 30k)" and first[1] == "30.0k (1 of 1: 30k)"
    assert ge10[1].startswith("0.33 ") and "{—}" in ge10[1]  # one seed: no t-interval


def test_mtrl_label_pins_the_reference_sac_and_variants_replace_what_they_name(tmp_path):
    """``mtrl`` means facebookresearch/mtrl's SAC settings in every session, whatever mtrl's defaults; a variant's
    override replaces the pinned value of its key (one value per key on the command line) and keeps the other."""
    from tests.test_rl_train import cfg_of

    def agent(overrides):
        cmd = parity.mtrl_command("reach-v3", 1, 100, tmp_path, overrides)
        args = cmd[cmd.index("mtrl.train") + 1 :]
        keys = [a.partition("=")[0] for a in args]
        assert len(keys) == len(set(keys)), keys
        return cfg_of(*[a for a in args if not a.startswith("hydra.")]).agent

    clamp, log_alpha = "agent.log_std=clamp", "agent.alpha_loss=log_alpha"
    cases = (([], ("tanh", "alpha")), ([clamp], ("clamp", "alpha")), ([log_alpha], ("tanh", "log_alpha")),
             ([clamp, log_alpha], ("clamp", "log_alpha")))  # fmt: skip
    for overrides, expected in cases:
        a = agent(overrides)
        assert (a.log_std, a.alpha_loss) == expected


def test_paired_differences_are_seed_by_seed():
    a = {1: {10_000: 1.0, 20_000: 1.0}, 2: {10_000: 0.5, 20_000: 0.9}, 3: {10_000: 1.0, 20_000: 1.0}}
    b = {1: {10_000: 0.0, 20_000: 1.0}, 2: {10_000: 0.5, 20_000: 0.5}}  # seed 3 not run: left out
    text = parity.paired({"x": {"t": a}, "y": {"t": b}}, "x", "y")
    assert "### t (seeds 1, 2)" in text
    # mean ≥10k: seed 1 1.0 − 0.5 = +0.50, seed 2 0.70 − 0.50 = +0.20; first ≥0.9: 10k − 20k, 20k − never (left out)
    assert "| mean ≥10k | +0.35 {" in text and "| +0.50, +0.20 |" in text
    assert "| first ≥0.9 (steps) | -10.0k {—} | -10.0k |" in text
