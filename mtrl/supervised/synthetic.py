"""Small, learnable synthetic data written in exactly the layouts the real loaders read (``mtrl.supervised.data``).

Each scene is a background class with a few rectangles of other classes. The image is a per-class colour plus a
vertical brightness ramp and noise, so from the image a network can tell each pixel's class (segmentation), its
class depth offset plus the ramp (depth) and its class normal (surface normals). About 2% of pixels are marked
ignore (label -1) or invalid (depth/normal 0), as in the real data. CelebA images get one 4x4-pixel-ish cell per
attribute, bright when the attribute is on, with per-attribute base rates between 10% and 90%.

    python -c "from mtrl.supervised.synthetic import write_nyuv2; write_nyuv2('/tmp/nyu', 32, 8, 64, 96)"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()


def _check_hw(height: int, width: int) -> None:
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ValueError(f"height and width must be positive multiples of 32 (five 2x poolings), got {height}x{width}")


def _scene(rng: np.random.Generator, n_classes: int, height: int, width: int) -> np.ndarray:
    label = np.full((height, width), rng.integers(n_classes), dtype=np.int64)
    for _ in range(int(rng.integers(2, 6))):
        h, w = int(rng.integers(height // 6, height // 2 + 1)), int(rng.integers(width // 6, width // 2 + 1))
        i, j = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        label[i : i + h, j : j + w] = rng.integers(n_classes)
    return label


def _write_dense(
    root: str | Path,
    n_train: int,
    n_val: int,
    height: int,
    width: int,
    seed: int,
    n_classes: int,
    label_dir: str,
    depth_range: tuple[float, float],
    normals: bool,
) -> Path:
    _check_hw(height, width)
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be >= 1, got {n_train}, {n_val}")
    root = Path(root)
    palette_rng = np.random.default_rng(12345)  # the "world": fixed across seeds and splits
    colours = palette_rng.uniform(0.1, 0.9, size=(n_classes, 3))
    lo, hi = depth_range
    class_depth = palette_rng.uniform(lo, lo + 0.6 * (hi - lo), size=n_classes)
    class_normal = palette_rng.normal(size=(n_classes, 3))
    class_normal /= np.linalg.norm(class_normal, axis=1, keepdims=True)
    ramp = np.linspace(0.0, 1.0, height)[:, None] * np.ones((1, width))
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        fields = ["image", label_dir, "depth"] + (["normal"] if normals else [])
        for f in fields:
            (root / split / f).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = _scene(rng, n_classes, height, width)
            image = colours[label] * (0.7 + 0.3 * ramp[..., None]) + rng.normal(0.0, 0.03, size=(height, width, 3))
            depth = class_depth[label] + 0.4 * (hi - lo) * ramp
            invalid = rng.random((height, width)) < 0.02
            depth[invalid] = 0.0
            lab = label.astype(np.float32)
            lab[rng.random((height, width)) < 0.02] = -1.0
            np.save(root / split / "image" / f"{i}.npy", np.clip(image, 0, 1).astype(np.float32))
            np.save(root / split / label_dir / f"{i}.npy", lab)
            np.save(root / split / "depth" / f"{i}.npy", depth[..., None].astype(np.float32))
            if normals:
                normal = class_normal[label].astype(np.float32)
                normal[invalid] = 0.0
                np.save(root / split / "normal" / f"{i}.npy", normal)
    return root


def write_nyuv2(root: str | Path, n_train: int = 32, n_val: int = 8, height: int = 64, width: int = 96,
                seed: int = 0) -> Path:  # fmt: skip
    """Write synthetic NYUv2 (13 classes, depth in metres ~0.5-10, unit normals) in the MTAN ``.npy`` layout."""
    return _write_dense(root, n_train, n_val, height, width, seed, 13, "label", (0.5, 10.0), normals=True)


def write_cityscapes(root: str | Path, n_train: int = 32, n_val: int = 8, height: int = 64, width: int = 128,
                     seed: int = 0) -> Path:  # fmt: skip
    """Write synthetic CityScapes (``label_7``: 7 classes, inverse depth ~0.005-0.15) in the MTAN ``.npy`` layout."""
    return _write_dense(root, n_train, n_val, height, width, seed, 7, "label_7", (0.005, 0.15), normals=False)


def write_celeba(root: str | Path, n_train: int = 64, n_val: int = 16, n_test: int = 16, size: int = 40,
                 seed: int = 0) -> Path:  # fmt: skip
    """Write synthetic CelebA in the official flat layout: ``img_align_celeba/*.jpg`` (``size`` x ``size``),
    ``list_attr_celeba.txt`` and ``list_eval_partition.txt``."""
    from PIL import Image

    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    root = Path(root)
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base_rate = np.random.default_rng(12345).uniform(0.1, 0.9, size=40)
    n = n_train + n_val + n_test
    attrs = rng.random((n, 40)) < base_rate
    ys, xs = np.linspace(0, size, 9).astype(int), np.linspace(0, size, 6).astype(int)
    attr_lines, part_lines = [str(n), " ".join(CELEBA_ATTRIBUTES)], []
    for k in range(n):
        name = f"{k + 1:06d}.jpg"
        img = np.full((size, size, 3), 0.3) + rng.normal(0.0, 0.03, size=(size, size, 3))
        for a in range(40):
            r, c = divmod(a, 5)
            if attrs[k, a]:
                img[ys[r] : ys[r + 1], xs[c] : xs[c + 1], a % 3] += 0.6
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(img_dir / name, quality=95)
        attr_lines.append(name + " " + " ".join("1" if v else "-1" for v in attrs[k]))
        part_lines.append(f"{name} {0 if k < n_train else 1 if k < n_train + n_val else 2}")
    (root / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n")
    return root


WRITERS = {"nyuv2": write_nyuv2, "cityscapes": write_cityscapes, "celeba": write_celeba}
