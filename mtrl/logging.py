"""The single owner of TensorBoard tag names and of ``eval.jsonl``.

TensorBoard (one tag per scalar, x-axis = env steps per task; SPEC §4):

- ``eval/success_rate``, ``eval/episode_return``, ``eval_tasks/<task>/success_rate``,
  ``eval_tasks/<task>/episode_return``
- ``rollout/success_rate``, ``rollout/episode_return``, ``rollout/episodes`` (training episodes finished in the
  window), ``rollout_tasks/<task>/success_rate``
- ``train/critic_loss``, ``train/actor_loss``, ``train/alpha_loss``, ``train/entropy``, ``train/skipped_updates``,
  ``train_tasks/<task>/alpha``, ``train_tasks/<task>/critic_loss``, ``train_tasks/<task>/actor_loss``
- ``aggregator/weight/<task>``, ``aggregator/grad_norm/<task>``, ``aggregator/cos_to_direction/<task>``,
  ``aggregator/imbalance_ratio``, ``aggregator/cos_theta``, ``aggregator/conflict_frac``,
  ``aggregator/pareto_failure`` (fraction of updates with some ``cos(g_i, d) < 0``), ``aggregator/solver_ms``,
  ``aggregator/skipped``: diagnostics of the **critic** aggregation (IMGrad paper Defs. 1-3); the actor's
  aggregation has the same tags under ``aggregator_actor/``, the shared temperature's (``agent.aggregate_on``
  with ``alpha``) under ``aggregator_alpha/``.
- ``time/sps`` (env steps per second, all tasks), ``time/update_ms``, ``time/aggregator_ms``, ``time/env_ms``
- the resolved config as text (``config``).

Scalars are means over the ``train.log_every`` window (diagnostics come from every diagnostic update, then
averaged). The raw values of every diagnostic update (``agent.diagnostics_every``) go to
``diagnostics/<critic|actor|alpha>.bin`` (``logger.diagnostics_file``, default on; :mod:`mtrl.diagnostics_file`).

``eval.jsonl``: one JSON object per evaluation (schema fixed, read by the report tools)::

    {"step": <env steps per task>, "total_env_steps": int, "protocol": "mt10"|"mt10_legacy"|"mt1"|"fake",
     "seed": int, "method": <aggregator name>, "success_rate": float, "episode_return": float,
     "tasks": {"<task>": {"success_rate": float, "episode_return": float}}}

The file is rewritten atomically (temp file + rename) at each evaluation; on resume the records after the
checkpoint's step are dropped so a resumed run's file matches an uninterrupted one, and a file that lost records
(emptied, deleted) is rebuilt from the copy each checkpoint carries (``evals``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mtrl._io import JsonlRecords, atomic_write_text
from mtrl.diagnostics_file import DiagnosticsWriter

EVAL_FILE = "eval.jsonl"
TB_DIR = "tb"
AGG_PREFIX = {"critic": "aggregator", "actor": "aggregator_actor", "alpha": "aggregator_alpha"}
_AGG_SCALARS = ("imbalance_ratio", "cos_theta", "conflict_frac", "pareto_failure", "solver_ms", "skipped")
_AGG_LISTS = {"weights": "weight", "grad_norms": "grad_norm", "cos_to_direction": "cos_to_direction"}


class _Window:
    """Running sums of scalars between two writes."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, tag: str, value: Any) -> None:
        if value is None:
            return
        v = float(value)
        if math.isfinite(v):
            self.sums[tag] += v
            self.counts[tag] += 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}


class RunLogger:
    """TensorBoard scalars, eval.jsonl and the config text of one run (see the module docstring for the tags)."""

    def __init__(
        self,
        out_dir: str | Path,
        task_names: list[str],
        protocol: str,
        seed: int,
        method: str,
        tensorboard: bool = True,
        purge_step: int | None = None,
        diagnostics_streams: list[str] | None = None,
    ) -> None:
        """``purge_step``: on resume, the checkpoint's step + 1; TensorBoard then drops what the interrupted run
        logged from that step on (no step twice, no series going backwards), and the raw diagnostics file its rows
        after the checkpoint. ``diagnostics_streams``: the aggregated losses whose raw diagnostics are written
        (``None``: no raw file)."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tasks, self.protocol, self.seed, self.method = list(task_names), protocol, int(seed), method
        self.evals = JsonlRecords(self.out_dir / EVAL_FILE)
        self.window = _Window()
        self.writer = None
        self._keep = None if purge_step is None else int(purge_step) - 1
        self.raw: dict[str, DiagnosticsWriter] | None = None
        if diagnostics_streams is not None:
            self.raw = {s: self._raw_writer(s) for s in diagnostics_streams}
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / TB_DIR), purge_step=purge_step)

    def _raw_writer(self, stream: str) -> DiagnosticsWriter:
        return DiagnosticsWriter(self.out_dir, stream, self.tasks, x="env steps per task", keep_up_to=self._keep)

    # ------------------------------------------------------------------ accumulate
    def add_update(self, metrics: dict[str, float], critic_losses, actor_losses, alphas, results: dict,
                   step: int | None = None, update: int | None = None) -> None:  # fmt: skip
        """Accumulate one SAC update: losses, α, timings and the aggregator diagnostics per aggregated loss (and,
        with ``step`` and ``update`` given, one raw row per aggregated loss)."""
        if self.raw is not None and step is not None:
            own = {"critic": critic_losses, "actor": actor_losses}
            for loss_name, res in results.items():
                if res.stats:
                    if loss_name not in self.raw:
                        self.raw[loss_name] = self._raw_writer(loss_name)
                    self.raw[loss_name].add(int(update if update is not None else -1), int(step), res.stats,
                                            own.get(loss_name))  # fmt: skip
        w = self.window
        for k in ("critic_loss", "actor_loss", "alpha_loss", "entropy"):
            w.add(f"train/{k}", metrics.get(k))
        w.add("time/update_ms", metrics.get("update_ms"))
        w.add("time/aggregator_ms", metrics.get("aggregator_ms", 0.0))
        for i, task in enumerate(self.tasks):
            w.add(f"train_tasks/{task}/alpha", alphas[i])
            w.add(f"train_tasks/{task}/critic_loss", critic_losses[i])
            w.add(f"train_tasks/{task}/actor_loss", actor_losses[i])
        for loss_name, res in results.items():
            prefix = AGG_PREFIX.get(loss_name, f"aggregator_{loss_name}")
            stats = res.stats
            for key in _AGG_SCALARS:
                w.add(f"{prefix}/{key}", stats.get(key))
            for key, short in _AGG_LISTS.items():
                values = stats.get(key)
                if values is None:
                    continue
                for task, v in zip(self.tasks, list(values)):
                    w.add(f"{prefix}/{short}/{task}", v)

    def add_episode(self, task_index: int, episode_return: float, success: bool) -> None:
        """Accumulate one finished training episode."""
        self.window.add("rollout/episode_return", episode_return)
        self.window.add("rollout/success_rate", float(success))
        self.window.add(f"rollout_tasks/{self.tasks[task_index]}/success_rate", float(success))
        self.window.add("rollout/episodes", 1.0)

    def add_scalar(self, tag: str, value: float) -> None:
        self.window.add(tag, value)

    # ------------------------------------------------------------------ write
    def flush(self, step: int, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Write the window's means (``rollout/episodes`` as a count) at ``step``; return them."""
        means = self.window.means()
        if "rollout/episodes" in self.window.counts:
            means["rollout/episodes"] = float(self.window.counts["rollout/episodes"])
        means.update(extra or {})
        self.sync_diagnostics(fsync=False)
        if self.writer is not None:
            for tag, v in means.items():
                self.writer.add_scalar(tag, v, step)
        self.window = _Window()
        return means

    def sync_diagnostics(self, fsync: bool = True) -> None:
        """Append the buffered raw diagnostic rows to their files (before a checkpoint: with ``fsync``)."""
        for raw in (self.raw or {}).values():
            raw.flush(sync=fsync)

    def log_config(self, text: str, tensorboard: bool = True) -> None:
        """The resolved config, as TensorBoard text (a code block) and ``resolved_config.yaml``."""
        atomic_write_text(self.out_dir / "resolved_config.yaml", text)
        if self.writer is not None and tensorboard:
            self.writer.add_text("config", "```yaml\n" + text + "\n```", 0)

    def log_eval(self, step: int, total_env_steps: int, success: dict[str, float], returns: dict[str, float]) -> dict:
        """Write one evaluation to TensorBoard and append it to ``eval.jsonl`` (atomic rewrite)."""
        record = {
            "step": int(step),
            "total_env_steps": int(total_env_steps),
            "protocol": self.protocol,
            "seed": self.seed,
            "method": self.method,
            "success_rate": float(np.mean([success[t] for t in self.tasks])),
            "episode_return": float(np.mean([returns[t] for t in self.tasks])),
            "tasks": {t: {"success_rate": float(success[t]), "episode_return": float(returns[t])} for t in self.tasks},
        }
        self.evals.append(record)
        if self.writer is not None:
            self.writer.add_scalar("eval/success_rate", record["success_rate"], step)
            self.writer.add_scalar("eval/episode_return", record["episode_return"], step)
            for t in self.tasks:
                self.writer.add_scalar(f"eval_tasks/{t}/success_rate", success[t], step)
                self.writer.add_scalar(f"eval_tasks/{t}/episode_return", returns[t], step)
            self.writer.flush()
        return record

    def restore_evals(self, up_to_step: int, saved: list[dict[str, Any]] | None = None) -> None:
        """On resume: keep the existing eval records up to ``up_to_step`` (later ones belong to a lost future);
        ``saved``: the checkpoint's copy of the records, from which a file lacking some is rebuilt."""
        self.evals.restore("step", up_to_step, saved)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The evaluations written so far (those of ``eval.jsonl``)."""
        return self.evals.records

    def close(self) -> None:
        self.sync_diagnostics(fsync=False)
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
