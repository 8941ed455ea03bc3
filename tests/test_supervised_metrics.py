"""Supervised metrics against values computed by hand on small arrays; Δm% against the published Nash-MTL row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtrl.supervised import metrics as M


def test_confusion_matrix_miou_and_pixel_accuracy_by_hand() -> None:
    # pixels (target, pred): (0,0) (1,1) (2,1) (2,2) and one ignored (-1, 0)
    cm = M.ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, -1]))
    # IoU: class 0: 1/(1+1-1) = 1; class 1: 1/(1+2-1) = 0.5; class 2: 1/(2+1-1) = 0.5
    assert cm.miou() == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert cm.pix_acc() == pytest.approx(3 / 4)
    # accumulates over batches (a second batch: one wrong pixel of class 0 predicted as 2)
    cm.update(torch.tensor([[2]]), torch.tensor([[0]]))
    # class 0: tp 1, row 2, col 1 -> 1/2; class 1: 1/2; class 2: tp 1, row 2, col 2 -> 1/3
    assert cm.miou() == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert cm.pix_acc() == pytest.approx(3 / 5)


def test_miou_leaves_out_classes_absent_from_targets_and_predictions() -> None:
    cm = M.ConfusionMatrix(4)  # class 3 never appears
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert cm.miou() == pytest.approx(1.0)


def test_depth_errors_by_hand() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[2.0, 0.0], [4.0, 2.0]]]])  # 0 = invalid pixel
    abs_err, rel_err = M.depth_errors(pred, target)
    assert abs_err == pytest.approx((1 + 1 + 2) / 3)
    assert rel_err == pytest.approx((1 / 2 + 1 / 4 + 2 / 2) / 3)
    assert float(M.depth_loss(pred, target)) == pytest.approx(4 / 3)


def _unit(deg: float) -> list[float]:
    r = math.radians(deg)
    return [math.sin(r), 0.0, math.cos(r)]


def test_normal_errors_by_hand() -> None:
    angles = [0.0, 10.0, 20.0, 45.0]
    pred = torch.tensor([_unit(a) for a in angles] + [_unit(90.0)]).T.reshape(1, 3, 1, 5)
    target = torch.tensor([_unit(0.0)] * 4 + [[0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 5)  # last pixel invalid
    mean, median, w11, w22, w30 = M.normal_errors(pred, target)
    assert mean == pytest.approx(np.mean(angles), abs=1e-4)
    assert median == pytest.approx(15.0, abs=1e-4)
    assert (w11, w22, w30) == pytest.approx((0.5, 0.75, 0.75))
    cos = np.cos(np.radians(angles))
    assert float(M.normal_loss(pred, target)) == pytest.approx(1 - cos.mean(), abs=1e-6)


def test_segmentation_loss_ignores_minus_one() -> None:
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 5.0]]]])  # [B=1, C=2, H=1, W=2]
    label = torch.tensor([[[0.0, -1.0]]])
    expected = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
    assert float(M.segmentation_loss(logits, label)) == pytest.approx(float(expected))


def test_binary_f1_by_hand() -> None:
    f1 = M.BinaryF1(2)
    logits = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    f1.update(logits, target)
    # task 0: tp 1, fp 1, fn 1 -> P = R = 0.5 -> F1 0.5; task 1: tp 2, fp 0, fn 0 -> 1
    np.testing.assert_allclose(f1.f1(), [0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(f1.accuracy(), [0.5, 1.0])


NASH_MTL_NYUV2 = dict(
    miou=0.4013, pix_acc=0.6593, abs_err=0.5261, rel_err=0.2171, normal_mean=25.26, normal_median=20.08,
    within_11_25=0.2840, within_22_5=0.5547, within_30=0.6815,
)  # fmt: skip


def test_delta_m_of_the_published_nash_mtl_nyuv2_row() -> None:
    assert M.delta_m(NASH_MTL_NYUV2, "nyuv2") == pytest.approx(-4.05, abs=0.01)


def test_delta_m_signs_and_bases() -> None:
    base = M.STL_BASES["cityscapes"]
    assert M.delta_m(base, "cityscapes") == pytest.approx(0.0)
    better = {**base, "miou": base["miou"] * 1.1}  # higher mIoU is better: Δm falls by 10/4 %
    assert M.delta_m(better, "cityscapes") == pytest.approx(-2.5)
    worse = {**base, "abs_err": base["abs_err"] * 1.2}  # higher error is worse
    assert M.delta_m(worse, "cityscapes") == pytest.approx(5.0)
    with pytest.raises(ValueError, match="missing metric"):
        M.delta_m({"miou": 0.5}, "nyuv2")
    with pytest.raises(ValueError, match="valid: nyuv2, cityscapes, celeba"):
        M.delta_m(base, "qm9")
    with pytest.raises(ValueError, match=r"missing metric\(s\) f1/5_o_Clock_Shadow, .* \(40 of 40\)"):
        M.delta_m(base, "celeba")  # CelebA has FAMO's bases (issue 26): its 40 F1 are needed
