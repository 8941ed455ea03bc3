"""The registry: one line per method. ``make_aggregator`` validates names and keyword arguments."""

from __future__ import annotations

import inspect
from typing import Any

from mtrl.aggregators._base import Aggregator
from mtrl.aggregators._cagrad import CAGrad
from mtrl.aggregators._imgrad import IMGrad
from mtrl.aggregators._imtl import IMTL
from mtrl.aggregators._ls import LS
from mtrl.aggregators._mgda import MGDA
from mtrl.aggregators._nashmtl import NashMTL
from mtrl.aggregators._pcgrad import PCGrad
from mtrl.aggregators._rlw import RLW
from mtrl.aggregators._stl import STL

AGGREGATORS: dict[str, type[Aggregator]] = {
    "ls": LS,
    "stl": STL,
    "rlw": RLW,
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "imtl": IMTL,
    "cagrad": CAGrad,
    "nashmtl": NashMTL,
    "imgrad": IMGrad,
}


def make_aggregator(name: str, **kwargs: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` with hyperparameters ``kwargs``.

    Raises:
        ValueError: unknown name (the message lists the valid names) or a bad hyperparameter value.
        TypeError: a keyword the method does not take (the message names it and lists the valid ones).
    """
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; valid names: {', '.join(sorted(AGGREGATORS))}")
    cls = AGGREGATORS[name]
    params = {p for p in inspect.signature(cls.__init__).parameters if p != "self"}
    bad = sorted(set(kwargs) - params)
    if bad:
        valid = ", ".join(sorted(params)) or "none"
        raise TypeError(f"aggregator {name!r} got unknown argument(s) {', '.join(bad)}; valid: {valid}")
    return cls(**kwargs)
