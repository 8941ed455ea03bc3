"""The papers' evaluation of a supervised run: which epochs' test metrics a published row reports.

- **NYUv2, CityScapes**: the test metrics averaged over the **last 10 epochs**, and Δm% of that mean. This is
  MTAN's protocol (``lorenmt/mtan``), stated in ``AvivNavon/nash-mtl`` ``experiments/nyuv2/README.md`` ("we report
  the test performance averaged over the last 10 epochs ... not handled in the code") and used by the CAGrad, FAMO
  and IMGrad tables. A run shorter than 10 epochs averages the epochs it has, and says how many.
- **CelebA**: the test F1 per attribute at the epoch with the **best mean validation F1** (the first such epoch),
  and Δm% of those F1 against the single-task bases (``metrics.CELEBA_STL_F1``). ``Cranial-XIX/FAMO``
  ``experiments/celeba/trainer.py`` keeps ``best_epoch`` (strict ``>`` on the mean validation F1) beside the test
  F1 of every epoch.

The records are the lines of a run's ``metrics.jsonl`` (one per epoch, ``{"epoch", "test", "val"?, ...}``);
:func:`paper_summary` is what the trainer writes to ``summary.json`` at the end of a run and what
``scripts/supervised_summary.py`` reports by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtrl.supervised import metrics as M

#: epochs averaged for NYUv2/CityScapes (the papers' protocol)
LAST_K = 10
#: the run directory's file with the papers' evaluation of the finished run
SUMMARY_FILE = "summary.json"
#: CelebA's model-selection metric (mean F1 over the attributes, on the validation split)
SELECT_METRIC = "f1_mean"


def last_k_mean(records: Sequence[dict[str, Any]], k: int = LAST_K) -> tuple[dict[str, float], list[int]]:
    """Mean of each numeric test metric over the last ``k`` records (fewer if the run is shorter), and the epochs
    it covers. A metric missing or non-finite in one of those epochs is left out rather than averaged over fewer."""
    if k < 1:
        raise ValueError(f"last_k must be >= 1, got {k}")
    tail = list(records)[-k:]
    if not tail:
        return {}, []
    keys = [m for m, v in tail[-1]["test"].items() if isinstance(v, (int, float))]
    out = {}
    for m in keys:
        vals = [r["test"].get(m) for r in tail]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            out[m] = float(np.mean(vals))
    return out, [int(r["epoch"]) for r in tail]


def best_validation_record(records: Sequence[dict[str, Any]], metric: str = SELECT_METRIC) -> dict[str, Any]:
    """The record of the first epoch with the highest validation ``metric`` (FAMO's CelebA selection).

    Raises ``ValueError`` when no record has that validation metric."""
    scored = [(r["val"][metric], i) for i, r in enumerate(records) if isinstance(r.get("val"), dict)
              and isinstance(r["val"].get(metric), (int, float)) and math.isfinite(r["val"][metric])]  # fmt: skip
    if not scored:
        raise ValueError(f"no epoch has a finite validation {metric!r} to select by")
    best = max(v for v, _ in scored)
    return records[min(i for v, i in scored if v == best)]


def paper_summary(records: Sequence[dict[str, Any]], benchmark: str, last_k: int = LAST_K,
                  bases: Mapping[str, float] | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The papers' evaluation of one run (see module docstring); ``None`` for a run without records. ``bases``
    replaces the built-in single-task bases of Δm% (e.g. CelebA bases trained here, ``scripts/celeba_stl_bases.py``).

    Returns ``{"benchmark", "selection": "last_k" | "best_val", "protocol": <one line>, "epochs": [...],
    "n_epochs_run", "test": {metric: value}, "delta_m": Δm% | None}``.
    """
    records = list(records)
    if not records:
        return None
    n_run = int(records[-1]["epoch"])
    if benchmark == "celeba":
        rec = best_validation_record(records)
        test = {m: float(v) for m, v in rec["test"].items() if isinstance(v, (int, float))}
        epochs = [int(rec["epoch"])]
        protocol = (f"test at the best-validation epoch: epoch {epochs[0]} of {n_run} "
                    f"(mean validation F1 {rec['val'][SELECT_METRIC]:.4f})")  # fmt: skip
        selection = "best_val"
    else:
        test, epochs = last_k_mean(records, last_k)
        short = f", fewer than {last_k} were run" if len(epochs) < last_k else ""
        if len(epochs) > 1:
            protocol = f"mean of the last {len(epochs)} epochs (epochs {epochs[0]}-{epochs[-1]} of {n_run}{short})"
        else:
            protocol = f"the last epoch (epoch {epochs[0]} of {n_run}{short})"
        selection = "last_k"
    return {"benchmark": benchmark, "selection": selection, "protocol": protocol, "epochs": epochs,
            "n_epochs_run": n_run, "test": test, "delta_m": _delta_m(test, benchmark, bases)}  # fmt: skip


def _delta_m(test: dict[str, float], benchmark: str, bases: Mapping[str, float] | None) -> float | None:
    if bases is None:
        return M.delta_m_if_known(test, benchmark)
    return M.delta_m(test, benchmark, bases) if all(k in test for k in bases) else None


def format_summary(summary: dict[str, Any]) -> str:
    """One line: the protocol, the table metrics and Δm%."""
    bench = summary["benchmark"]
    shown = M.DENSE_METRICS.get(bench, ("f1_mean", "acc_mean"))
    parts = [f"{m}={summary['test'][m]:.4f}" for m in shown if m in summary["test"]]
    dm = summary.get("delta_m")
    parts.append(f"Δm={dm:+.3f}%" if dm is not None else "Δm=n/a")
    return f"{summary['protocol']}: " + " ".join(parts)
