"""The registry: one line per method. ``make_aggregator`` validates names and keyword arguments."""

from __future__ import annotations

import inspect
from typing import Any

from mtrl.aggregators._base import Aggregator
from mtrl.aggregators._cagrad import CAGrad
from mtrl.aggregators._compose import Composed, Threshold
from mtrl.aggregators._dwa import DWA
from mtrl.aggregators._famo import FAMO
from mtrl.aggregators._graddrop import GradDrop
from mtrl.aggregators._gradnorm_scale import GradNormScale
from mtrl.aggregators._igb import IGBv1
from mtrl.aggregators._igbv2 import IGBv2
from mtrl.aggregators._imgrad import IMGrad
from mtrl.aggregators._imgrad_nash import IMGradNash
from mtrl.aggregators._imtl import IMTL
from mtrl.aggregators._ls import LS
from mtrl.aggregators._mgda import MGDA
from mtrl.aggregators._moco import MoCo
from mtrl.aggregators._nashmtl import NashMTL
from mtrl.aggregators._pcgrad import PCGrad
from mtrl.aggregators._rlw import RLW
from mtrl.aggregators._si import SI
from mtrl.aggregators._stl import STL
from mtrl.aggregators._uw import UW

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
    "si": SI,
    "dwa": DWA,
    "uw": UW,
    "famo": FAMO,
    "graddrop": GradDrop,
    "gradnorm_scale": GradNormScale,
    "threshold": Threshold,
    "imgrad_nash": IMGradNash,
    "moco": MoCo,
    "igbv1": IGBv1,
    "igbv2": IGBv2,
}


def make_aggregator(name: str, **kwargs: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` with hyperparameters ``kwargs``.

    ``"a+b"`` composes a loss weighting ``a`` in front of a gradient method ``b`` (see ``Composed``); their
    hyperparameters go in ``kwargs[a]`` and ``kwargs[b]`` (dicts), e.g.
    ``make_aggregator("dwa+imgrad", imgrad={"c": 0.8})``.

    Raises:
        ValueError: unknown name (the message lists the valid names) or a bad hyperparameter value.
        TypeError: a keyword the method does not take (the message names it and lists the valid ones).
    """
    if "+" in name:
        parts = name.split("+")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"a composition is 'weighting+method' (two registry names), got {name!r}")
        bad = sorted(set(kwargs) - set(parts))
        if bad:
            raise TypeError(
                f"aggregator {name!r}: arguments go under {parts[0]!r} or {parts[1]!r}, got {', '.join(bad)}"
            )
        a, b = (make_aggregator(p, **dict(kwargs.get(p) or {})) for p in parts)
        return Composed(a, b)
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; valid names: {', '.join(sorted(AGGREGATORS))}")
    cls = AGGREGATORS[name]
    params = {p for p in inspect.signature(cls.__init__).parameters if p != "self"}
    bad = sorted(set(kwargs) - params)
    if bad:
        valid = ", ".join(sorted(params)) or "none"
        raise TypeError(f"aggregator {name!r} got unknown argument(s) {', '.join(bad)}; valid: {valid}")
    sig = inspect.signature(cls.__init__).parameters
    for key, value in kwargs.items():  # a value of another kind than the default's: name the argument (issue 21)
        default = sig[key].default
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError(f"aggregator {name!r}: {key} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)) and not number:
            raise TypeError(f"aggregator {name!r}: {key} must be a number, got {value!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        msg = str(err)
        if not any(k in msg for k in kwargs):  # a message that does not say which argument it is about
            msg = f"aggregator {name!r} with {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}: {msg}"
        raise type(err)(msg) from None
