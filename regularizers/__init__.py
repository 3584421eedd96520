"""Regularizers for any PyTensor graph: penalties, noise, dropout, constraints, clipping.

A model is seen as a :class:`Graph` of named outputs (``'hid1:out'``) and
named parameters (``'hid1.w'``); each regularizer selects what it acts on by
glob pattern and hooks into the graph, the loss, the gradients or the
updates. Depends on numpy and PyTensor only.

>>> import regularizers
>>> regularizers.from_kwargs(weight_l2=1e-4, hidden_dropout=0.5)
[weight_l2(weight=0.0001, pattern=None), hidden_dropout(weight=0.5, pattern=None, seed=None)]
"""

from . import constraints, contractive, penalties, stochastic
from .base import Regularizer
from .constraints import (
    MaxGradientElem,
    MaxGradientNorm,
    MaxNorm,
    MaxTotalGradientNorm,
    norm_constraint,
    total_norm_constraint,
)
from .contractive import Contractive
from .graph import Graph
from .patterns import Pattern
from .penalties import HiddenL1, HiddenL2, RecurrentNorm, RecurrentState, WeightL1, WeightL2
from .registry import aliases, arguments, build, canonical, from_kwargs, lookup, names, register
from .stochastic import (
    Dropout,
    HiddenDropout,
    HiddenNoise,
    InputDropout,
    InputNoise,
    Noise,
    OutputDropout,
    OutputNoise,
)

__all__ = [
    "Graph",
    "Pattern",
    "Regularizer",
    "register",
    "names",
    "canonical",
    "aliases",
    "lookup",
    "arguments",
    "build",
    "from_kwargs",
    "norm_constraint",
    "total_norm_constraint",
    "WeightL2",
    "WeightL1",
    "HiddenL2",
    "HiddenL1",
    "RecurrentState",
    "RecurrentNorm",
    "Contractive",
    "Noise",
    "InputNoise",
    "HiddenNoise",
    "OutputNoise",
    "Dropout",
    "InputDropout",
    "HiddenDropout",
    "OutputDropout",
    "MaxNorm",
    "MaxGradientNorm",
    "MaxTotalGradientNorm",
    "MaxGradientElem",
    "constraints",
    "contractive",
    "penalties",
    "stochastic",
]
