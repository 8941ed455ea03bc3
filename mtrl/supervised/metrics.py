"""Losses and test metrics of the dense-prediction and CelebA benchmarks, and Δm% (SPEC §6).

As in the MTAN code family (Liu et al., CVPR 2019, ``lorenmt/mtan``; reused by CAGrad, Nash-MTL, FAMO, IMGrad):

- segmentation: pixel-wise cross-entropy ignoring label ``-1``; mIoU and pixel accuracy from a confusion matrix
  accumulated over the whole test set;
- depth: L1 on valid pixels (target ``!= 0``); abs/rel error per batch, averaged over batches;
- surface normals: ``1 − cos`` on valid pixels; angle mean/median and the fractions within 11.25°/22.5°/30° per
  batch, averaged over batches;
- CelebA (FAMO, Liu et al., NeurIPS 2023): per-attribute binary cross-entropy, F1 per attribute from TP/FP/FN
  counted over the test set.

``Δm% = mean_k (−1)^{δ_k} (M_k − B_k) / B_k · 100`` with ``δ_k = 1`` when higher is better (Maninis et al. 2019;
the form used in the Nash-MTL/IMGrad tables) and the single-task bases ``B`` of SPEC §6.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

#: Metric names in the order of the papers' tables, per benchmark.
DENSE_METRICS: dict[str, tuple[str, ...]] = {
    "nyuv2": (
        "miou",
        "pix_acc",
        "abs_err",
        "rel_err",
        "normal_mean",
        "normal_median",
        "within_11_25",
        "within_22_5",
        "within_30",
    ),  # fmt: skip
    "cityscapes": ("miou", "pix_acc", "abs_err", "rel_err"),
}
HIGHER_IS_BETTER = {"miou", "pix_acc", "within_11_25", "within_22_5", "within_30", "f1_mean"}
#: Single-task learning bases of SPEC §6 (from the CAGrad/Nash-MTL code; CityScapes rel_err as printed there).
STL_BASES: dict[str, dict[str, float]] = {
    "nyuv2": dict(zip(DENSE_METRICS["nyuv2"], (0.3830, 0.6376, 0.6754, 0.2780, 25.01, 19.21, 0.3014, 0.5720, 0.6915))),
    "cityscapes": dict(zip(DENSE_METRICS["cityscapes"], (0.7401, 0.9316, 0.0125, 27.77))),
}
#: CelebA single-task test F1 per attribute (file order of ``list_attr_celeba.txt``), the bases of FAMO's CelebA
#: Δm%. FAMO's repository holds no file with them (its ``experiments/celeba/utils.py`` ``BASE`` is a copy of the
#: NYUv2 bases); its author published them in the issue thread github.com/Cranial-XIX/FAMO/issues/2 (comment of
#: 2023-12-17), from 40 runs of ``experiments/celeba/trainer_one_task.py`` (the same 9-layer network, one task).
#: To train them here instead: ``aggregator=stl aggregator_kwargs.task=<i>``, then ``scripts/celeba_stl_bases.py``
#: (docs/reference-supervised.md).
CELEBA_STL_F1 = (
    0.6736886, 0.68121034, 0.81524944, 0.5760289, 0.7205613, 0.8555076, 0.38203922, 0.58225113, 0.787647, 0.8321292,
    0.5029583, 0.68694085, 0.6781237, 0.5240381, 0.5161666, 0.95694304, 0.6968786, 0.67976356, 0.8808315, 0.8582131,
    0.97034, 0.93267566, 0.5057539, 0.40307626, 0.9703734, 0.48644206, 0.60786104, 0.5261031, 0.56907415, 0.59815097,
    0.6858371, 0.924108, 0.5424991, 0.7406311, 0.71019936, 0.87365365, 0.9305602, 0.33704284, 0.7647628, 0.91907,
)  # fmt: skip


def _celeba_bases() -> dict[str, float]:
    from mtrl.supervised.synthetic import CELEBA_ATTRIBUTES

    return {f"f1/{a}": b for a, b in zip(CELEBA_ATTRIBUTES, CELEBA_STL_F1, strict=True)}


STL_BASES["celeba"] = _celeba_bases()


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (per-attribute F1 ``f1/<attribute>`` included)."""
    return metric in HIGHER_IS_BETTER or metric.startswith("f1/")


def delta_m_if_known(values: Mapping[str, float], benchmark: str) -> float | None:
    """Δm% against the built-in bases, or ``None`` where there are none for ``benchmark`` or ``values`` lacks one
    of their metrics (e.g. CelebA with ``benchmark.n_tasks`` < 40)."""
    bases = STL_BASES.get(benchmark)
    if bases is None or any(k not in values for k in bases):
        return None
    return delta_m(values, benchmark)


def delta_m(values: Mapping[str, float], benchmark: str, bases: Mapping[str, float] | None = None) -> float:
    """Δm% of ``values`` relative to the single-task bases of ``benchmark`` (``nyuv2``, ``cityscapes``, ``celeba``).

    ``values`` maps metric names (``miou, pix_acc, abs_err, rel_err, normal_mean, normal_median, within_11_25,
    within_22_5, within_30``; CelebA: ``f1/<attribute>`` for the 40 attributes) to values in the units of SPEC §6
    (fractions for IoU/accuracy/"within"/F1, degrees for angles). ``bases`` overrides the built-in bases.

    >>> round(delta_m({"miou": 0.7401, "pix_acc": 0.9316, "abs_err": 0.0125, "rel_err": 27.77}, "cityscapes"), 6)
    0.0
    """
    if bases is None:
        if benchmark not in STL_BASES:
            raise ValueError(f"delta_m: no built-in bases for {benchmark!r}; valid: {', '.join(STL_BASES)}")
        bases = STL_BASES[benchmark]
    missing = sorted(set(bases) - set(values))
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ValueError(f"delta_m({benchmark}): missing metric(s) {shown} ({len(missing)} of {len(bases)})")
    terms = []
    for k, b in bases.items():
        sign = -1.0 if higher_is_better(k) else 1.0
        terms.append(sign * (float(values[k]) - b) / b)
    return float(np.mean(terms) * 100.0)


# ====================================================================== losses (MTAN ``model_fit`` / ``calc_loss``)
def _valid_mask(target: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` mask of pixels whose target is not all zero (0 = invalid depth/normal)."""
    return (target.sum(dim=1, keepdim=True) != 0).to(target.dtype)


def segmentation_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy (``nll_loss`` of ``log_softmax``), label ``-1`` ignored."""
    return F.cross_entropy(logits, label.long(), ignore_index=-1)


def depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 over valid pixels (``target != 0``), divided by the number of valid pixels."""
    mask = _valid_mask(target)
    return (torch.abs(pred - target) * mask).sum() / mask.sum().clamp_min(1.0)


def normal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − Σ(pred·target)/n_valid`` (pred unit-normalised), as in the MTAN code."""
    mask = _valid_mask(target)
    return 1.0 - (pred * target * mask).sum() / mask.sum().clamp_min(1.0)


# ====================================================================== metrics
class ConfusionMatrix:
    """Confusion matrix over a test set; rows = target class, columns = predicted class. Targets outside
    ``[0, n)`` (the ignore label ``-1``) are skipped."""

    def __init__(self, num_classes: int) -> None:
        self.n = int(num_classes)
        self.mat = torch.zeros(self.n, self.n, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted class ids and targets (any equal shapes)."""
        pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        keep = (target >= 0) & (target < self.n)
        idx = self.n * target[keep] + pred[keep]
        self.mat += torch.bincount(idx, minlength=self.n**2).reshape(self.n, self.n)

    def miou(self) -> float:
        """Mean over classes of ``TP / (TP + FP + FN)``; classes absent from both targets and predictions (union 0)
        are left out of the mean (the reference code would return NaN)."""
        h = self.mat.double()
        tp = torch.diag(h)
        union = h.sum(0) + h.sum(1) - tp
        present = union > 0
        return float((tp[present] / union[present]).mean()) if bool(present.any()) else float("nan")

    def pix_acc(self) -> float:
        """Fraction of non-ignored pixels classified correctly."""
        total = self.mat.sum()
        return float(torch.diag(self.mat).sum().double() / total) if int(total) else float("nan")


def depth_errors(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """``(mean |pred − t|, mean |pred − t| / t)`` over the valid pixels (``t != 0``) of one batch."""
    mask = _valid_mask(target).bool()
    p, t = pred.masked_select(mask), target.masked_select(mask)
    if t.numel() == 0:
        return float("nan"), float("nan")
    err = torch.abs(p - t)
    return float(err.mean()), float((err / t.abs()).mean())


def normal_errors(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float, float, float]:
    """Angle between predicted and true normals over the valid pixels of one batch, in degrees:
    ``(mean, median, frac < 11.25, frac < 22.5, frac < 30)`` (fractions in [0, 1]). The median is numpy's
    (mean of the two middle values for an even count), as in the reference code."""
    mask = target.sum(dim=1) != 0
    cos = torch.clamp((pred * target).sum(dim=1).masked_select(mask), -1.0, 1.0)
    if cos.numel() == 0:
        return (float("nan"),) * 5  # type: ignore[return-value]
    ang = np.degrees(np.arccos(cos.double().cpu().numpy()))
    return (
        float(ang.mean()),
        float(np.median(ang)),
        float((ang < 11.25).mean()),
        float((ang < 22.5).mean()),
        float((ang < 30).mean()),
    )


class BinaryF1:
    """Per-attribute F1 of ``sigmoid(logit) > 0.5`` from TP/FP/FN counted over a test set (FAMO's CelebA metric)."""

    def __init__(self, n_tasks: int) -> None:
        self.tp = torch.zeros(n_tasks, dtype=torch.float64)
        self.fp = torch.zeros(n_tasks, dtype=torch.float64)
        self.fn = torch.zeros(n_tasks, dtype=torch.float64)
        self.correct = torch.zeros(n_tasks, dtype=torch.float64)
        self.count = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """``logits`` and 0/1 ``target`` of shape ``[B, K]``."""
        p = (logits.detach().cpu() > 0).double()
        y = target.detach().cpu().double()
        self.tp += (p * y).sum(0)
        self.fp += (p * (1 - y)).sum(0)
        self.fn += ((1 - p) * y).sum(0)
        self.correct += (p == y).double().sum(0)
        self.count += y.shape[0]

    def f1(self) -> np.ndarray:
        precision = self.tp / (self.tp + self.fp + 1e-8)
        recall = self.tp / (self.tp + self.fn + 1e-8)
        return (2 * precision * recall / (precision + recall + 1e-8)).numpy()

    def accuracy(self) -> np.ndarray:
        return (self.correct / max(self.count, 1)).numpy()


class BatchMean:
    """Mean of per-batch values (the papers average depth and normal errors over batches, not pixels)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: float) -> None:
        if math.isfinite(value):
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}
