"""Layers: the layer-list vocabulary, its shapes, and every layer form."""

from . import activations, attention, conv, normalization, structure
from .base import Feedforward, Layer, forms, glorot, orthogonal, register_form
from .parsing import Structure, parse_layers
from .recurrent import GRU, LSTM, RNN
from .shapes import Shape

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Feedforward",
    "Layer",
    "Shape",
    "Structure",
    "activations",
    "attention",
    "conv",
    "normalization",
    "structure",
    "forms",
    "glorot",
    "orthogonal",
    "parse_layers",
    "register_form",
]
