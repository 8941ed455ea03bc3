"""Networks of the supervised benchmarks, with explicit parameter groups for the aggregator.

- :class:`MTANSegNet`: SegNet with the task-attention modules of MTAN (Liu, Johns & Davison, "End-to-End
  Multi-Task Learning with Attention", CVPR 2019, Fig. 2), the model of the NYUv2/CityScapes tables of CAGrad,
  Nash-MTL, FAMO and IMGrad. Filters ``[64, 128, 256, 512, 512] * width``; ``width`` < 1 gives small test models.
- :class:`CelebACNN`: the 9-layer CNN with 40 linear heads of FAMO's CelebA experiment (Liu et al., NeurIPS 2023).

Parameter groups (:meth:`MTANSegNet.parameter_groups`):

- ``backbone``: the shared SegNet encoder/decoder and the two shared convolution stacks of the attention branch
  (``encoder_block_att``/``decoder_block_att`` in the MTAN code);
- ``attention``: the per-task attention masks (``encoder_att``/``decoder_att``); each is reached by one task only;
- ``heads``: the per-task prediction layers.

``encode(x)`` / ``decode(rep)`` split a model without attention (and :class:`CelebACNN`) at its shared
representation, for the ``rep_grad`` approximation (``train.grad_wrt=rep``).

Which of them the aggregator treats as shared is a choice, because the reference code families differ:
CAGrad/IMGrad (``shared_modules()`` with the attention modules commented out) aggregate ``backbone`` only and let
each attention module take its own task's gradient; Nash-MTL/FAMO (``shared_parameters()`` = every parameter not
in a head) aggregate ``backbone+attention``, so the attention modules get the aggregator's weight of their task.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Output channels per task kind.
TASK_CHANNELS = {"depth": 1, "normal": 3}
SHARED_CHOICES = ("backbone", "backbone+attention")


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _att(cin: int, cmid: int, cout: int) -> nn.Sequential:
    """Attention mask: 1x1 conv-BN-ReLU, 1x1 conv-BN-sigmoid (MTAN Fig. 2)."""
    return nn.Sequential(
        nn.Conv2d(cin, cmid, 1), nn.BatchNorm2d(cmid), nn.ReLU(inplace=True),
        nn.Conv2d(cmid, cout, 1), nn.BatchNorm2d(cout), nn.Sigmoid(),
    )  # fmt: skip


def _head(c: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, out, 1))


class MTANSegNet(nn.Module):
    """SegNet-MTAN for dense multi-task prediction.

    Args:
        tasks: task name -> kind, kinds ``segmentation`` (``n_classes`` logits), ``depth`` (1 channel) and
            ``normal`` (3 channels, unit-normalised), e.g. ``{"segmentation": "segmentation", "depth": "depth"}``.
        n_classes: segmentation classes (13 NYUv2, 7 CityScapes).
        width: channel multiplier of ``[64, 128, 256, 512, 512]`` (1.0 = the papers' model).
        attention: MTAN task-attention branch (``False``: plain shared SegNet, heads on the decoder output).

    ``forward`` returns ``{task: prediction}``: segmentation logits ``[B, C, H, W]`` (the loss applies
    log-softmax), depth ``[B, 1, H, W]``, normals ``[B, 3, H, W]`` with unit L2 norm. H and W must be multiples of 32.
    """

    def __init__(self, tasks: dict[str, str], n_classes: int = 13, width: float = 1.0, attention: bool = True) -> None:
        super().__init__()
        bad = {k: v for k, v in tasks.items() if v not in ("segmentation", *TASK_CHANNELS)}
        if bad or not tasks:
            raise ValueError(f"tasks must map names to segmentation|depth|normal, got {tasks}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.tasks, self.n_classes, self.attention = dict(tasks), int(n_classes), bool(attention)
        f = [max(2, round(c * width)) for c in (64, 128, 256, 512, 512)]
        self.filters = f
        # ---- shared SegNet
        self.encoder_block = nn.ModuleList([_conv(3, f[0])] + [_conv(f[i], f[i + 1]) for i in range(4)])
        self.decoder_block = nn.ModuleList([_conv(f[0], f[0])] + [_conv(f[i + 1], f[i]) for i in range(4)])
        self.conv_block_enc = nn.ModuleList(
            [_conv(f[0], f[0]), _conv(f[1], f[1])]
            + [nn.Sequential(_conv(f[i], f[i]), _conv(f[i], f[i])) for i in (2, 3, 4)]
        )
        self.conv_block_dec = nn.ModuleList(
            [_conv(f[0], f[0]), _conv(f[0], f[0])]
            + [nn.Sequential(_conv(f[i], f[i]), _conv(f[i], f[i])) for i in (1, 2, 3)]
        )
        # ---- attention branch: shared conv stacks, per-task masks
        if self.attention:
            self.encoder_block_att = nn.ModuleList([_conv(f[i], f[i + 1]) for i in range(4)] + [_conv(f[4], f[4])])
            self.decoder_block_att = nn.ModuleList(
                [_conv(f[0], f[0])] + [_conv(f[i + 1], f[i]) for i in range(3)] + [_conv(f[4], f[4])]
            )
            self.encoder_att = nn.ModuleDict(
                {
                    t: nn.ModuleList(
                        [_att(f[0], f[0], f[0])] + [_att(2 * f[i + 1], f[i + 1], f[i + 1]) for i in range(4)]
                    )
                    for t in tasks
                }
            )
            self.decoder_att = nn.ModuleDict(
                {
                    t: nn.ModuleList(
                        [_att(2 * f[0], f[0], f[0])] + [_att(f[i + 1] + f[i], f[i], f[i]) for i in range(4)]
                    )
                    for t in tasks
                }
            )
        self.heads = nn.ModuleDict({t: _head(f[0], TASK_CHANNELS.get(k, self.n_classes)) for t, k in tasks.items()})
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ parameter groups
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"backbone": [...], "attention": [...], "heads": [...]}`` (see the module docstring)."""
        groups: dict[str, list[nn.Parameter]] = {"backbone": [], "attention": [], "heads": []}
        for name, p in self.named_parameters():
            top = name.split(".")[0]
            key = "heads" if top == "heads" else "attention" if top in ("encoder_att", "decoder_att") else "backbone"
            groups[key].append(p)
        return groups

    def split_parameters(self, shared: str = "backbone") -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """``(shared, task_specific)`` for ``shared`` in ``backbone`` | ``backbone+attention``."""
        if shared not in SHARED_CHOICES:
            raise ValueError(f"shared must be one of {', '.join(SHARED_CHOICES)}, got {shared!r}")
        g = self.parameter_groups()
        if shared == "backbone":
            return g["backbone"], g["attention"] + g["heads"]
        return g["backbone"] + g["attention"], g["heads"]

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        enc0, enc1, ups, decs = self._segnet(x)
        if not self.attention:
            return self.decode(decs[-1])
        return {t: self._predict(t, self._attend(t, enc0, enc1, ups, decs)) for t in self.tasks}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The shared representation (decoder output ``[B, filters[0], H, W]``) of the plain SegNet, for the
        ``rep_grad`` approximation. With attention there is no single shared representation (each task's path
        reuses shared layers after its own masks), so this raises ``ValueError``."""
        if self.attention:
            raise ValueError("MTANSegNet: no single shared representation with attention (use model.attention=false)")
        return self._segnet(x)[3][-1]

    def decode(self, rep: torch.Tensor) -> dict[str, torch.Tensor]:
        """The task-specific part of the plain SegNet: ``{task: head(rep)}`` (``forward = decode(encode(x))``)."""
        return {t: self._predict(t, rep) for t in self.tasks}

    def _predict(self, t: str, feat: torch.Tensor) -> torch.Tensor:
        y = self.heads[t](feat)
        if self.tasks[t] == "normal":
            y = y / torch.linalg.vector_norm(y, dim=1, keepdim=True).clamp_min(1e-12)
        return y

    def _segnet(self, x: torch.Tensor) -> tuple[list, list, list, list]:
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"MTANSegNet: H and W must be multiples of 32, got {tuple(x.shape[-2:])}")
        enc0, enc1, indices = [], [], []
        h = x
        for i in range(5):
            a = self.encoder_block[i](h)
            b = self.conv_block_enc[i](a)
            h, idx = F.max_pool2d(b, 2, 2, return_indices=True)
            enc0.append(a)
            enc1.append(b)
            indices.append(idx)
        ups, decs = [], []
        for i in range(5):
            up = F.max_unpool2d(h, indices[-i - 1], 2, 2)
            h = self.conv_block_dec[-i - 1](self.decoder_block[-i - 1](up))
            ups.append(up)
            decs.append(h)
        return enc0, enc1, ups, decs

    def _attend(self, t: str, enc0: Sequence, enc1: Sequence, ups: Sequence, decs: Sequence) -> torch.Tensor:
        """Task ``t``'s attention path: masks on the shared features, encoder then decoder (MTAN Eq. 1-2)."""
        a = None
        for j in range(5):
            inp = enc0[j] if j == 0 else torch.cat((enc0[j], a), dim=1)
            a = F.max_pool2d(self.encoder_block_att[j](self.encoder_att[t][j](inp) * enc1[j]), 2, 2)
        for j in range(5):
            a = self.decoder_block_att[-j - 1](F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True))
            a = self.decoder_att[t][-j - 1](torch.cat((ups[j], a), dim=1)) * decs[j]
        return a


class CelebACNN(nn.Module):
    """9-layer CNN (7 conv + 2 linear, BatchNorm, ReLU) with one linear head per attribute (FAMO's CelebA model).

    ``forward`` returns logits ``[B, n_tasks]`` (the loss is ``binary_cross_entropy_with_logits``, the stable form
    of FAMO's sigmoid + ``BCELoss``). Parameter groups: ``backbone`` (shared) and ``heads``.
    """

    def __init__(self, n_tasks: int = 40, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        c = [max(2, round(v * width)) for v in (64, 128, 256, 512)]

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.backbone = nn.Sequential(
            *block(3, c[0]), nn.MaxPool2d(2),
            *block(c[0], c[1]), *block(c[1], c[1]), nn.MaxPool2d(2),
            *block(c[1], c[2]), *block(c[2], c[2]), nn.MaxPool2d(2),
            *block(c[2], c[3]), *block(c[3], c[3]), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(c[3], c[3], bias=False), nn.BatchNorm1d(c[3]), nn.ReLU(inplace=True),
            nn.Linear(c[3], c[3], bias=False), nn.BatchNorm1d(c[3]), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.heads = nn.ModuleList([nn.Linear(c[3], 1) for _ in range(n_tasks)])

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), "attention": [], "heads": list(self.heads.parameters())}

    def split_parameters(self, shared: str = "backbone") -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        if shared not in SHARED_CHOICES:
            raise ValueError(f"shared must be one of {', '.join(SHARED_CHOICES)}, got {shared!r}")
        return list(self.backbone.parameters()), list(self.heads.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The shared representation ``[B, c]`` (for the ``rep_grad`` approximation)."""
        return self.backbone(x)

    def decode(self, rep: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(rep) for head in self.heads], dim=1)


def count_parameters(params: Iterator[nn.Parameter] | Sequence[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
