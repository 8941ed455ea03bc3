"""Loaders (layouts, clear refusals), the synthetic writers, augmentation and the models' parameter groups."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mtrl.aggregators import aggregate_backward, make_aggregator
from mtrl.supervised.data import (
    CelebADataset,
    DataLayoutError,
    NpyMultiTaskDataset,
    check_npy_root,
    random_scale_crop,
)
from mtrl.supervised.metrics import depth_loss, normal_loss, segmentation_loss
from mtrl.supervised.models import CelebACNN, MTANSegNet
from mtrl.supervised.synthetic import write_celeba, write_cityscapes, write_nyuv2

NYU_TASKS = {"segmentation": "segmentation", "depth": "depth", "normal": "normal"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def nyu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nyuv2(tmp_path_factory.mktemp("nyu"), n_train=4, n_val=2, height=32, width=64)


def test_synthetic_nyuv2_has_the_mtan_layout_and_loads(nyu_root: Path) -> None:
    assert check_npy_root(nyu_root, "nyuv2") == {"train": 4, "val": 2}
    assert np.load(nyu_root / "train" / "image" / "0.npy").shape == (32, 64, 3)
    assert np.load(nyu_root / "train" / "label" / "0.npy").shape == (32, 64)
    assert np.load(nyu_root / "train" / "depth" / "0.npy").shape == (32, 64, 1)
    item = NpyMultiTaskDataset(nyu_root, "nyuv2", "val")[1]
    assert item["image"].shape == (3, 32, 64) and item["label"].shape == (32, 64)
    assert item["depth"].shape == (1, 32, 64) and item["normal"].shape == (3, 32, 64)
    labels = item["label"].unique()
    assert labels.min() == -1 and labels.max() < 13  # ignore label present, 13 classes
    valid = item["normal"].abs().sum(0) != 0
    torch.testing.assert_close(item["normal"][:, valid].norm(dim=0), torch.ones(int(valid.sum())))
    assert bool(((item["depth"] == 0) == ~valid[None]).all())  # invalid depth and normal on the same pixels


def test_synthetic_cityscapes_layout(tmp_path: Path) -> None:
    root = write_cityscapes(tmp_path, n_train=2, n_val=1, height=32, width=64)
    assert check_npy_root(root, "cityscapes") == {"train": 2, "val": 1}
    item = NpyMultiTaskDataset(root, "cityscapes", "train", augment=True)[0]
    assert set(item) == {"image", "label", "depth"} and item["label"].max() < 7
    with pytest.raises(ValueError, match="multiples of 32"):
        write_cityscapes(tmp_path / "bad", height=30, width=64)


def _expect_layout_error(root: Path, benchmark: str, *fragments: str) -> str:
    with pytest.raises(DataLayoutError) as info:
        check_npy_root(root, benchmark)
    msg = str(info.value)
    assert "root/{train,val}/" in msg  # names the expected layout
    for f in fragments:
        assert f in msg, msg
    return msg


def test_malformed_npy_roots_are_refused_with_layout_and_counts(tmp_path: Path, nyu_root: Path) -> None:
    _expect_layout_error(tmp_path / "nowhere", "nyuv2", "does not exist", "image,label,depth,normal")
    root = tmp_path / "copy"
    shutil.copytree(nyu_root, root)
    (root / "train" / "depth" / "3.npy").unlink()
    _expect_layout_error(root, "nyuv2", "different numbers", "train/image: 4", "train/depth: 3", "val/normal: 2")
    shutil.rmtree(root / "val" / "normal")
    np.save(root / "train" / "depth" / "3.npy", np.ones((32, 64, 1), np.float32))
    _expect_layout_error(root, "nyuv2", "missing folder(s) in val/", "val/normal: missing")
    _expect_layout_error(nyu_root, "cityscapes", "label_7", "train/label_7: missing", "train/image: 4")
    shutil.copytree(nyu_root / "val" / "image", root / "val" / "normal")
    np.save(root / "train" / "label" / "0.npy", np.zeros((32, 64, 2), np.float32))
    _expect_layout_error(root, "nyuv2", "train/label/0.npy has shape (32, 64, 2), expected HxW")
    (root / "train" / "image" / "1.npy").rename(root / "train" / "image" / "7.npy")
    _expect_layout_error(root, "nyuv2", "not 0.npy .. 3.npy")


def test_augmentation_scale_crop_and_flip() -> None:
    img, label = torch.rand(3, 32, 64), torch.randint(0, 5, (32, 64)).float()
    depth, normal = torch.full((1, 32, 64), 4.0), torch.nn.functional.normalize(torch.randn(3, 32, 64), dim=0)
    same = random_scale_crop(img, label, depth, normal, scales=(1.0,))
    for a, b in zip(same, (img, label, depth, normal)):
        torch.testing.assert_close(a, b)
    _, lab2, dep2, _ = random_scale_crop(img, label, depth, normal, scales=(2.0,))
    assert lab2.shape == (32, 64) and bool((dep2 == 2.0).all())  # twice closer: depth / 2
    assert set(lab2.unique().tolist()) <= set(label.unique().tolist())  # nearest: no new labels


def test_celeba_official_layout(tmp_path: Path) -> None:
    root = write_celeba(tmp_path / "celeba", n_train=6, n_val=2, n_test=3, size=16)
    train, test = CelebADataset(root, "train", (32, 32)), CelebADataset(root, "test", (32, 32))
    assert (len(train), len(test)) == (6, 3)
    item = train[0]
    assert item["image"].shape == (3, 32, 32) and float(item["image"].max()) <= 1.0
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "11" and len(lines[1].split()) == 40
    expected = [1.0 if v == "1" else 0.0 for v in lines[2].split()[1:]]
    assert item["attributes"].tolist() == expected
    # Google-Drive folder structure is accepted too
    gd = tmp_path / "gd"
    (gd / "Img").mkdir(parents=True)
    (gd / "Anno").mkdir()
    (gd / "Eval").mkdir()
    shutil.copytree(root / "img_align_celeba", gd / "Img" / "img_align_celeba")
    shutil.copy(root / "list_attr_celeba.txt", gd / "Anno")
    shutil.copy(root / "list_eval_partition.txt", gd / "Eval")
    assert len(CelebADataset(gd, "val", (32, 32))) == 2


def test_malformed_celeba_is_refused(tmp_path: Path) -> None:
    root = write_celeba(tmp_path / "c", n_train=4, n_val=1, n_test=1, size=16)
    with pytest.raises(DataLayoutError, match="list_attr_celeba.txt: missing") as info:
        CelebADataset(tmp_path, "train")
    assert "img_align_celeba" in str(info.value)
    (root / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DataLayoutError, match="6 images listed but 5 found"):
        CelebADataset(root, "train")
    write_celeba(root, n_train=4, n_val=1, n_test=1, size=16)
    attr = root / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:3] + [lines[3] + " 1"] + lines[4:]) + "\n")
    with pytest.raises(DataLayoutError, match=r"1 bad rows \(first at line 4\)"):
        CelebADataset(root, "train")


def test_mtan_segnet_matches_the_reference_size_and_shared_choices() -> None:
    model = MTANSegNet(NYU_TASKS, n_classes=13, width=1.0)
    n = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    # the MTAN NYUv2 model of the reference code has 44,229,073 parameters, 44,117,184 outside the heads
    assert n(model.parameters()) == 44_229_073
    assert n(model.split_parameters("backbone+attention")[0]) == 44_117_184
    shared, task = model.split_parameters("backbone")
    assert n(shared) + n(task) == 44_229_073 and n(shared) < 44_117_184
    with pytest.raises(ValueError, match="backbone, backbone\\+attention"):
        model.split_parameters("everything")
    assert CelebACNN(40, 0.25)(torch.rand(3, 3, 32, 32)).shape == (3, 40)


@pytest.mark.parametrize("shared", ["backbone", "backbone+attention"])
def test_heads_get_their_own_task_gradient(nyu_root: Path, shared: str) -> None:
    torch.manual_seed(0)
    model = MTANSegNet(NYU_TASKS, 13, width=0.0625)
    ds = NpyMultiTaskDataset(nyu_root, "nyuv2", "train")
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}
    pred = model(batch["image"])
    losses = [
        segmentation_loss(pred["segmentation"], batch["label"]),
        depth_loss(pred["depth"], batch["depth"]),
        normal_loss(pred["normal"], batch["normal"]),
    ]
    sh, task_params = model.split_parameters(shared)
    own = {t: torch.autograd.grad(losses[i], list(model.heads[t].parameters()), retain_graph=True) for i, t in
           enumerate(NYU_TASKS)}  # fmt: skip
    att = list(model.encoder_att["depth"].parameters())
    att_own = torch.autograd.grad(losses[1], att, retain_graph=True)
    res = aggregate_backward(make_aggregator("imgrad"), losses, sh, task_params, scale=3.0)
    for t in NYU_TASKS:
        for p, g in zip(model.heads[t].parameters(), own[t]):
            torch.testing.assert_close(p.grad, g)
    if shared == "backbone":  # the attention masks of a task take that task's gradient
        for p, g in zip(att, att_own):
            torch.testing.assert_close(p.grad, g)
    else:  # aggregated: 3 x direction, and the direction is not the plain depth gradient
        offset = sum(p.numel() for p in sh[: [id(q) for q in sh].index(id(att[0]))])
        torch.testing.assert_close(att[0].grad.reshape(-1), 3.0 * res.direction[offset : offset + att[0].numel()])
        assert not torch.allclose(att[0].grad, att_own[0])
