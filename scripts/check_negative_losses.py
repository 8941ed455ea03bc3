"""Issue 21: do the loss-based weightings survive RL's negative losses? (fake env, a few hundred steps each)

The SAC actor loss ``α log π − Q`` is negative once Q > 0; methods built for positive supervised losses (UW's
``σ² → L`` fixed point, SI's ``log L``, FAMO's ``log ℓ``, DWA's and IGB's loss ratios) may misbehave on it. For each
method this trains ``env=fake experiment=smoke`` for ``--steps`` steps per task (aggregate_on ``critic,actor``, the
default) and prints one row: whether the run diverged and where, the mean actor loss, and the actor aggregator's
and critic aggregators' weights (min..max over tasks of the last window's means), read back from TensorBoard.
The refusal of ``uw`` on the actor loss (``mtrl.train.NEEDS_POSITIVE_LOSSES``) is lifted here to measure it.

    PYTHONPATH=$PWD python scripts/check_negative_losses.py --steps 600 uw si dwa famo igbv1 igbv2 gradnorm_scale
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import mtrl.train as train_mod
from mtrl._paths import config_dir
from mtrl.train import DivergedError, train


def measure(method: str, steps: int, aggregate_on: str, out: Path, extra: list[str] | None = None) -> dict:
    overrides = ["env=fake", "experiment=smoke", f"agent.aggregator={method}", f"train.steps_per_task={steps}",
                 "train.log_every=50", "train.eval_every=100000", f"train.checkpoint_every={steps}",
                 "train.torch_threads=1", "train.progress=false", "logger=tensorboard", "agent.diagnostics_every=1",
                 f"agent.aggregate_on=[{aggregate_on}]", "train.max_skipped_in_a_row=1000000"]  # fmt: skip
    overrides += extra or []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    row = {"method": method, "aggregate_on": aggregate_on, "diverged": "-"}
    try:
        train(cfg, out)
    except DivergedError as err:
        row["diverged"] = str(err).split(":")[0].removeprefix("training diverged at ")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    loss = [e.value for e in acc.Scalars("train/actor_loss")] if "train/actor_loss" in tags else []
    row["actor_loss_mean"] = sum(loss) / len(loss) if loss else float("nan")
    row["actor_loss_last"] = loss[-1] if loss else float("nan")
    for name, prefix in (("actor", "aggregator_actor/weight/"), ("critic", "aggregator/weight/")):
        w = [acc.Scalars(t)[-1].value for t in tags if t.startswith(prefix)]
        row[f"{name}_w"] = f"{min(w):.3g}..{max(w):.3g}" if w else "-"
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("methods", nargs="+")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--aggregate-on", default="critic,actor")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a further Hydra override, e.g. --set agent.log_std=tanh (repeatable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train_mod.NEEDS_POSITIVE_LOSSES = set()  # measure what the refusal (mtrl/train.py) prevents
    print("method\taggregate_on\tdiverged\tactor_loss_mean\tactor_loss_last\tactor_weights\tcritic_weights",
          flush=True)
    for m in args.methods:
        with tempfile.TemporaryDirectory() as d:
            r = measure(m, args.steps, args.aggregate_on, Path(d), args.set)
        print(f"{r['method']}\t{r['aggregate_on']}\t{r['diverged']}\t{r['actor_loss_mean']:.3g}\t"
              f"{r['actor_loss_last']:.3g}\t{r['actor_w']}\t{r['critic_w']}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
