"""Layers: the layer-list vocabulary, feed-forward and recurrent forms, activations."""

from . import activations
from .base import Feedforward, Layer, forms, glorot, orthogonal, parse_layers, register_form
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Feedforward",
    "Layer",
    "activations",
    "forms",
    "glorot",
    "orthogonal",
    "parse_layers",
    "register_form",
]
