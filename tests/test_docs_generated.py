"""The docs parts read off the code stay in step with it: the generated tables and pages, the TensorBoard tags a run
actually writes, and each app's ``--help``.

- ``scripts/gen_docs.py --check``: the config-key table and preset list of docs/sac.md and docs/troubleshooting.md
  are what the configs and the source give now;
- every one-line error message in the source is on docs/troubleshooting.md;
- a small run of each app writes TensorBoard tags; each one (task names as ``<task>``, metric names as
  ``<metric>``) must be listed on docs/tensorboard.md;
- ``--help`` shows the app's own groups and presets (with their one-line descriptions) and its docs page, and not
  the other app's groups.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from mtrl import _help
from mtrl._paths import config_dir
from tests._doc_commands import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gen_docs  # noqa: E402

DOCS = ROOT / "docs"


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_generated_docs_are_up_to_date() -> None:
    assert gen_docs.main(["--check"]) == 0, "run: python scripts/gen_docs.py"


def test_every_error_message_in_the_code_is_on_the_troubleshooting_page() -> None:
    page = " ".join((DOCS / "troubleshooting.md").read_text().split())
    errors = gen_docs.collect_errors()
    assert len(errors) > 60  # ConfigError alone has more: the collector must not silently find nothing
    kinds = {k for k, _, _ in errors}
    assert {"ConfigError", "CheckpointError", "RunLockedError", "DivergedError", "DataLayoutError", "fail"} <= kinds
    missing = [f"{where}: {msg}" for _, msg, where in errors
               if " ".join(msg.split()).replace("`", "'").replace("|", "\\|") not in page]  # fmt: skip
    assert not missing, "not on docs/troubleshooting.md (run scripts/gen_docs.py):\n" + "\n".join(missing)


def test_the_collector_sees_a_new_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message added to the code is found (so the page test above can fail)."""
    pkg = tmp_path / "mtrl"
    pkg.mkdir()
    (pkg / "x.py").write_text("def f(v):\n    raise ConfigError(f'agent.foo must be > 0, got {v!r}')\n")
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    assert ("ConfigError", "agent.foo must be > 0, got <v>", "mtrl/x.py:2") in gen_docs.collect_errors()


def _normalise(tag: str, tasks: list[str], metrics: list[str] = ()) -> str:
    if tag in {f"test/{m}" for m in metrics}:
        return "test/<metric>"
    for t in sorted(tasks, key=len, reverse=True):
        tag = tag.replace(f"/{t}/", "/<task>/").replace(f"/{t}_", "/<task>_")
        if tag.endswith(f"/{t}"):
            tag = tag[: -len(t)] + "<task>"
    return tag


def _tags(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir))
    ea.Reload()
    return set(ea.Tags()["scalars"]) | {t.removesuffix("/text_summary") for t in ea.Tags()["tensors"]}


def _documented(tag: str, page: str) -> bool:
    if f"`{tag}`" in page:
        return True
    prefix, _, rest = tag.partition("/")
    # aggregator_actor/... and aggregator_alpha/...: "the same tags" as aggregator/
    return prefix.startswith("aggregator_") and f"`{prefix}/...`" in page and f"`aggregator/{rest}`" in page


def test_every_rl_tensorboard_tag_is_documented(tmp_path: Path) -> None:
    from mtrl.train import train

    overrides = [
        "env=fake", "env.num_tasks=2", "env.max_episode_steps=10", "env.eval_episodes=1", "agent.hidden_dim=16",
        "agent.num_layers=1", "agent.batch_size_per_task=8", "agent.buffer_capacity=2000",
        "agent.aggregator=imgrad", "agent.alpha=shared", "agent.aggregate_on=[critic,actor,alpha]",
        "agent.diagnostics_every=1", "train.steps_per_task=60", "train.warmup_steps_per_task=10",
        "train.log_every=20", "train.eval_every=60", "train.checkpoint_every=1000", "train.torch_threads=1",
        "train.progress=false",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    train(cfg, tmp_path)
    tags = {_normalise(t, ["fake-0", "fake-1"]) for t in _tags(tmp_path / "tb")}
    expected = {"eval/success_rate", "rollout/success_rate", "aggregator/weight/<task>", "aggregator_alpha/cos_theta"}
    assert expected <= tags
    page = (DOCS / "tensorboard.md").read_text()
    missing = sorted(t for t in tags if not _documented(t, page))
    assert not missing, f"RL tags not on docs/tensorboard.md: {missing}"


def test_every_supervised_tensorboard_tag_is_documented(tmp_path: Path) -> None:
    from mtrl.supervised.trainer import task_names, train

    overrides = [
        "benchmark=nyuv2", "data=synthetic", "aggregator=imgrad", "model.width=0.125", "benchmark.synthetic.n_train=8",
        "benchmark.synthetic.n_val=4", "benchmark.synthetic.height=32", "benchmark.synthetic.width=64",
        "optim.batch_size=2", "epochs=1", "train.log_every=1", "train.torch_threads=1", "train.progress=false",
        "train.tensorboard=true", f"out_dir={tmp_path}",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="supervised", overrides=overrides)
    train(cfg, tmp_path)
    import json

    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    metrics = [k for k in record.get("test", record) if k != "delta_m" and not k.endswith("_loss")]
    tasks = task_names(cfg)
    tags = {_normalise(t, tasks, metrics) for t in _tags(tmp_path / "tb") | _tags(tmp_path / "tb" / "epoch")}
    assert {"train/<task>_loss", "test/delta_m"} <= tags
    page = (DOCS / "tensorboard.md").read_text()
    missing = sorted(t for t in tags if not _documented(t, page))
    assert not missing, f"supervised tags not on docs/tensorboard.md: {missing}"


# ------------------------------------------------------------------------------------------------ --help
def test_rl_help_shows_its_own_groups_presets_and_page() -> None:
    r = subprocess.run([sys.executable, "-m", "mtrl.train", "--help"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for group in ("env:", "agent:", "logger:"):
        assert re.search(rf"^  {group}", out, re.M), f"group {group} missing from --help"
    assert not re.search(r"^  (benchmark|data):", out, re.M), "the supervised app's groups leak into mtrl.train --help"
    for name, desc in _help.presets("train").items():
        assert desc and f"  {name}" in out and desc in out, f"preset {name} without its line"
    assert "cagrad_mt10" in out and "docs/sac.md" in out


def test_supervised_and_toy_help_show_their_own() -> None:
    sup = _help.app_help("mtrl.supervised.train")
    assert re.search(r"^  benchmark: ", sup, re.M) and re.search(r"^  data: ", sup, re.M)
    assert not re.search(r"^  (env|agent|logger): ", sup, re.M) and "cagrad_mt10" not in sup
    assert "docs/supervised.md" in sup
    toy = _help.app_help("mtrl.toy")
    from mtrl.toy import PRESETS

    assert all(f"  {p}" in toy for p in PRESETS) and "docs/benchmarks.md" in toy and "cagrad_mt10" not in toy


def test_a_preset_description_comes_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("# @package _global_\n# help: the one line\n# more\nx: 1\n")
    (tmp_path / "b.yaml").write_text("# @package _global_\n# First sentence (e.g. this). Second one.\nx: 1\n")
    assert _help.describe(tmp_path / "a.yaml") == "the one line"
    assert _help.describe(tmp_path / "b.yaml") == "First sentence (e.g. this)"
