"""Datasets of the supervised benchmarks. They read local files only and never download.

NYUv2 and CityScapes use the preprocessed ``.npy`` layout of MTAN (Liu et al., CVPR 2019, ``lorenmt/mtan``), as
read by the CAGrad, Nash-MTL, FAMO and IMGrad code::

    root/{train,val}/image/{i}.npy     HxWx3 float, RGB in [0, 1]
    root/{train,val}/label/{i}.npy     HxW, class id, -1 = ignore          (CityScapes: label_7/, 7 classes)
    root/{train,val}/depth/{i}.npy     HxWx1, 0 = invalid                  (CityScapes: inverse depth)
    root/{train,val}/normal/{i}.npy    HxWx3 unit normals, 0 = invalid     (NYUv2 only)

``i = 0 .. n-1`` with the same ``n`` in every folder of a split. ``val`` is the test split of the papers.
Training augmentation (``augment=True``) is the one of those trainers: a random scale in {1, 1.2, 1.5}, a random
crop of 1/scale of the image resized back (bilinear for image/normal, nearest for label/depth, depth divided by
the scale), then a horizontal flip with probability 1/2 (x component of the normal negated). It draws from torch's
global generator, so a seeded run repeats it and a checkpoint restores it.

CelebA uses the official files (Liu et al., ICCV 2015), either flat or in the Google-Drive folder structure::

    root/img_align_celeba/000001.jpg ...     or  root/Img/img_align_celeba/...
    root/list_attr_celeba.txt                or  root/Anno/list_attr_celeba.txt
    root/list_eval_partition.txt             or  root/Eval/list_eval_partition.txt

Images are resized to ``image_size`` (64x64 in FAMO's trainer) with Pillow's bilinear filter; labels are the 40
attributes mapped from {-1, 1} to {0, 1}. Partition 0 = train, 1 = val, 2 = test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

#: Field folders of the MTAN ``.npy`` layout per benchmark, and the channel count of each (``None``: HxW).
NPY_FIELDS: dict[str, dict[str, int | None]] = {
    "nyuv2": {"image": 3, "label": None, "depth": 1, "normal": 3},
    "cityscapes": {"image": 3, "label_7": None, "depth": 1},
}
NPY_SPLITS = ("train", "val")
CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}
_INDEX = re.compile(r"^(\d+)\.npy$")


class DataLayoutError(ValueError):
    """A dataset root that does not have the expected layout (the message names the layout and what was found)."""


def npy_layout(benchmark: str) -> str:
    """One-line description of the expected ``.npy`` layout of ``benchmark``."""
    fields = NPY_FIELDS[benchmark]
    shapes = ", ".join(f"{k} HxW" + (f"x{c}" if c else "") for k, c in fields.items())
    return f"root/{{train,val}}/{{{','.join(fields)}}}/<i>.npy with i = 0..n-1 in every folder ({shapes})"


def _scan_npy(folder: Path) -> list[int] | None:
    if not folder.is_dir():
        return None
    return sorted(int(m.group(1)) for e in os.scandir(folder) if (m := _INDEX.match(e.name)))


def check_npy_root(root: str | Path, benchmark: str) -> dict[str, int]:
    """Validate the MTAN ``.npy`` layout under ``root``; return ``{split: n}``.

    Raises:
        DataLayoutError: root missing, a folder missing or empty, counts differing within a split, indices not
            ``0..n-1``, or a first sample with the wrong shape. The message names the layout and the counts found.
    """
    if benchmark not in NPY_FIELDS:
        raise ValueError(f"unknown .npy benchmark {benchmark!r}; valid: {', '.join(NPY_FIELDS)}")
    root = Path(root).expanduser()
    name = {"nyuv2": "NYUv2", "cityscapes": "CityScapes"}[benchmark]
    hint = f"expected the MTAN preprocessed layout {npy_layout(benchmark)}"
    if not root.is_dir():
        raise DataLayoutError(f"{name} root {str(root)!r} does not exist or is not a directory; {hint}")
    found: dict[str, list[int] | None] = {
        f"{s}/{f}": _scan_npy(root / s / f) for s in NPY_SPLITS for f in NPY_FIELDS[benchmark]
    }
    counts = ", ".join(f"{k}: {'missing' if v is None else len(v)}" for k, v in found.items())
    sizes: dict[str, int] = {}
    for split in NPY_SPLITS:
        idx = [found[f"{split}/{f}"] for f in NPY_FIELDS[benchmark]]
        lens = {len(v) for v in idx if v is not None}
        problem = None
        if any(v is None for v in idx):
            problem = f"missing folder(s) in {split}/"
        elif lens == {0}:
            problem = f"no <i>.npy files in {split}/"
        elif len(lens) != 1:
            problem = f"the folders of {split}/ hold different numbers of files"
        elif any(v != list(range(len(v))) for v in idx if v is not None):
            problem = f"file names in {split}/ are not 0.npy .. {max(lens) - 1}.npy"
        if problem:
            raise DataLayoutError(f"{name} root {str(root)!r}: {problem}; {hint}; found {counts}")
        sizes[split] = lens.pop()
    # shapes of the first training sample
    shapes = {}
    for f, c in NPY_FIELDS[benchmark].items():
        try:
            arr = np.load(root / "train" / f / "0.npy", mmap_mode="r")
        except (OSError, ValueError) as e:
            raise DataLayoutError(f"{name} root {str(root)!r}: cannot read train/{f}/0.npy ({e}); {hint}") from None
        want_dim = 2 if c is None else 3
        if arr.ndim != want_dim or (c is not None and arr.shape[2] != c):
            raise DataLayoutError(
                f"{name} root {str(root)!r}: train/{f}/0.npy has shape {tuple(arr.shape)}, expected "
                f"HxW{'' if c is None else f'x{c}'}; {hint}"
            )
        shapes[f] = tuple(arr.shape[:2])
    if len(set(shapes.values())) != 1:
        raise DataLayoutError(f"{name} root {str(root)!r}: sample 0 has different HxW per field {shapes}; {hint}")
    return sizes


def random_scale_crop(
    image: torch.Tensor,
    label: torch.Tensor,
    depth: torch.Tensor,
    normal: torch.Tensor | None = None,
    scales: Sequence[float] = (1.0, 1.2, 1.5),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Crop a random ``1/scale`` window and resize it back (MTAN issue #34 augmentation used by CAGrad/Nash-MTL).

    ``image``/``normal``: ``[C, H, W]`` (bilinear, align_corners); ``label``: ``[H, W]`` and ``depth``: ``[1, H, W]``
    (nearest). Depth is divided by the scale (the scene is seen ``scale`` times closer)."""
    height, width = image.shape[-2:]
    sc = float(scales[int(torch.randint(len(scales), (1,)))])
    h, w = int(height / sc), int(width / sc)
    i = int(torch.randint(height - h + 1, (1,)))
    j = int(torch.randint(width - w + 1, (1,)))

    def bilinear(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x[None, :, i : i + h, j : j + w], size=(height, width), mode="bilinear", align_corners=True
        )[0]

    def nearest(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None, :, i : i + h, j : j + w], size=(height, width), mode="nearest")[0]

    return (
        bilinear(image),
        nearest(label[None])[0],
        nearest(depth) / sc,
        None if normal is None else bilinear(normal),
    )


class NpyMultiTaskDataset(Dataset):
    """One split of NYUv2 or CityScapes in the MTAN ``.npy`` layout.

    Items are dicts of float tensors: ``image [3,H,W]``, ``label [H,W]`` (``-1`` ignore), ``depth [1,H,W]`` and,
    for NYUv2, ``normal [3,H,W]``.
    """

    def __init__(self, root: str | Path, benchmark: str, split: str = "train", augment: bool = False) -> None:
        if split not in NPY_SPLITS:
            raise ValueError(f"split must be one of {', '.join(NPY_SPLITS)}, got {split!r}")
        self.root, self.benchmark, self.split, self.augment = Path(root).expanduser(), benchmark, split, augment
        self.n = check_npy_root(self.root, benchmark)[split]
        self.label_dir = "label_7" if benchmark == "cityscapes" else "label"

    def __len__(self) -> int:
        return self.n

    def _load(self, field: str, index: int) -> torch.Tensor:
        path = self.root / self.split / field / f"{index}.npy"
        try:
            arr = np.load(path)
        except (OSError, ValueError, EOFError) as e:
            raise DataLayoutError(f"cannot read data file {path} ({type(e).__name__}: {e})") from None
        first = getattr(self, "_shapes", {}).get(field)
        if first is None:
            self._shapes = {**getattr(self, "_shapes", {}), field: np.load(path.parent / "0.npy", mmap_mode="r").shape}
            first = self._shapes[field]
        if arr.shape != first:
            raise DataLayoutError(f"data file {path} has shape {tuple(arr.shape)}, expected {tuple(first)} "
                                  f"(the shape of {field}/0.npy)")  # fmt: skip
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        return t.permute(2, 0, 1).contiguous() if t.dim() == 3 else t

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, label, depth = self._load("image", index), self._load(self.label_dir, index), self._load("depth", index)
        normal = self._load("normal", index) if self.benchmark == "nyuv2" else None
        if self.augment:
            image, label, depth, normal = random_scale_crop(image, label, depth, normal)
            if bool(torch.rand(1) < 0.5):
                image, label, depth = image.flip(-1), label.flip(-1), depth.flip(-1)
                if normal is not None:
                    normal = normal.flip(-1)
                    normal[0] = -normal[0]
        item = {"image": image, "label": label, "depth": depth}
        if normal is not None:
            item["normal"] = normal
        return item


# ====================================================================== CelebA
CELEBA_LAYOUT = (
    "root/img_align_celeba/<name>.jpg, root/list_attr_celeba.txt, root/list_eval_partition.txt (or the Google-Drive "
    "folders root/Img/img_align_celeba/, root/Anno/list_attr_celeba.txt, root/Eval/list_eval_partition.txt)"
)


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def read_celeba_index(root: str | Path) -> tuple[Path, list[str], list[str], np.ndarray, np.ndarray]:
    """Parse CelebA's official files: ``(image_dir, attribute_names, file_names, labels [N, 40] in {0,1},
    partition [N])``.

    Raises:
        DataLayoutError: a missing file or folder, a malformed line, files that disagree, or images missing; the
            message names the layout and the counts found.
    """
    root = Path(root).expanduser()
    hint = f"expected CelebA's official files: {CELEBA_LAYOUT}"
    if not root.is_dir():
        raise DataLayoutError(f"CelebA root {str(root)!r} does not exist or is not a directory; {hint}")
    img_dir = _first_existing(root / "img_align_celeba", root / "Img" / "img_align_celeba")
    attr = _first_existing(root / "list_attr_celeba.txt", root / "Anno" / "list_attr_celeba.txt")
    part = _first_existing(root / "list_eval_partition.txt", root / "Eval" / "list_eval_partition.txt")
    n_img = sum(1 for _ in os.scandir(img_dir)) if img_dir is not None and img_dir.is_dir() else None
    found = (
        f"found img_align_celeba/: {'missing' if n_img is None else f'{n_img} files'}, "
        f"list_attr_celeba.txt: {'missing' if attr is None else 'present'}, "
        f"list_eval_partition.txt: {'missing' if part is None else 'present'}"
    )
    if img_dir is None or attr is None or part is None:
        raise DataLayoutError(f"CelebA root {str(root)!r}: missing file(s); {hint}; {found}")
    lines = [ln.split() for ln in attr.read_text().splitlines() if ln.strip()]
    try:
        n_declared = int(lines[0][0])
    except (IndexError, ValueError):
        raise DataLayoutError(f"CelebA {attr}: first line must be the image count; {hint}") from None
    names_attr = lines[1] if len(lines) > 1 else []
    rows = lines[2:]
    bad = [
        i + 3 for i, r in enumerate(rows) if len(r) != len(names_attr) + 1 or any(v not in ("1", "-1") for v in r[1:])
    ]
    if len(names_attr) != 40 or bad or len(rows) != n_declared:
        raise DataLayoutError(
            f"CelebA {attr} is malformed: {len(names_attr)} attribute names (expected 40), {len(rows)} rows "
            f"(header says {n_declared}), {len(bad)} bad rows{f' (first at line {bad[0]})' if bad else ''}; {hint}"
        )
    prows = [ln.split() for ln in part.read_text().splitlines() if ln.strip()]
    if len(prows) != len(rows) or any(len(p) != 2 or p[1] not in ("0", "1", "2") for p in prows):
        raise DataLayoutError(
            f"CelebA {part} is malformed or disagrees with the attribute file ({len(prows)} rows vs {len(rows)}); "
            f"{hint}; {found}"
        )
    files = [r[0] for r in rows]
    if [p[0] for p in prows] != files:
        raise DataLayoutError(f"CelebA: image names differ between {attr.name} and {part.name}; {hint}")
    if n_img is not None and n_img < len(files):
        raise DataLayoutError(
            f"CelebA root {str(root)!r}: {len(files)} images listed but {n_img} found; {hint}; {found}"
        )
    labels = (np.array([r[1:] for r in rows], dtype=np.int8) > 0).astype(np.float32)
    partition = np.array([int(p[1]) for p in prows], dtype=np.int64)
    return img_dir, names_attr, files, labels, partition


class CelebADataset(Dataset):
    """One split of CelebA: items ``{"image": [3, h, w] in [0, 1], "attributes": [40] in {0, 1}}``."""

    def __init__(self, root: str | Path, split: str = "train", image_size: Sequence[int] = (64, 64)) -> None:
        if split not in CELEBA_SPLITS:
            raise ValueError(f"split must be one of {', '.join(CELEBA_SPLITS)}, got {split!r}")
        img_dir, self.attribute_names, files, labels, partition = read_celeba_index(root)
        keep = partition == CELEBA_SPLITS[split]
        self.img_dir = img_dir
        self.files = [f for f, k in zip(files, keep) if k]
        self.labels = torch.from_numpy(labels[keep])
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if not self.files:
            raise DataLayoutError(f"CelebA root {str(root)!r}: no images in split {split!r}; {CELEBA_LAYOUT}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from PIL import Image

        with Image.open(self.img_dir / self.files[index]) as im:
            im = im.convert("RGB").resize((self.image_size[1], self.image_size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
        return {"image": torch.from_numpy(arr).permute(2, 0, 1).contiguous(), "attributes": self.labels[index]}
