"""Gradient aggregators for multi-task learning: one module per method, one registry.

>>> import torch
>>> from mtrl.aggregators import make_aggregator
>>> agg = make_aggregator("imgrad", c=0.8)
>>> res = agg(torch.tensor([[1.0, 0.0], [0.0, 0.1]]))
>>> res.direction.shape, len(res.weights)
(torch.Size([2]), 2)
"""

from mtrl.aggregators._autograd import aggregate_backward, per_task_gradients, write_direction
from mtrl.aggregators._base import Aggregator, AggregatorResult, GramWeighting
from mtrl.aggregators._cagrad import CAGrad
from mtrl.aggregators._compose import Composed, Threshold
from mtrl.aggregators._dwa import DWA
from mtrl.aggregators._famo import FAMO
from mtrl.aggregators._graddrop import GradDrop
from mtrl.aggregators._gradnorm_scale import GradNormScale
from mtrl.aggregators._igb import IGBv1
from mtrl.aggregators._imgrad import IMGrad
from mtrl.aggregators._imgrad_nash import IMGradNash
from mtrl.aggregators._imtl import IMTL
from mtrl.aggregators._ls import LS
from mtrl.aggregators._mgda import MGDA
from mtrl.aggregators._moco import MoCo
from mtrl.aggregators._nashmtl import NashMTL
from mtrl.aggregators._pcgrad import PCGrad
from mtrl.aggregators._registry import AGGREGATORS, make_aggregator
from mtrl.aggregators._rlw import RLW
from mtrl.aggregators._si import SI
from mtrl.aggregators._stl import STL
from mtrl.aggregators._uw import UW

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "AggregatorResult",
    "CAGrad",
    "Composed",
    "DWA",
    "FAMO",
    "GradDrop",
    "GradNormScale",
    "GramWeighting",
    "IMGrad",
    "IMGradNash",
    "IGBv1",
    "IMTL",
    "LS",
    "MGDA",
    "MoCo",
    "NashMTL",
    "PCGrad",
    "RLW",
    "SI",
    "STL",
    "Threshold",
    "UW",
    "aggregate_backward",
    "make_aggregator",
    "per_task_gradients",
    "write_direction",
]
