"""Fused recurrent ops (see :mod:`trainkit.ops.recurrent`).

Importing this package registers the ops' Numba implementation, and their
JAX implementation as soon as PyTensor's JAX backend is imported (without
importing JAX itself).
"""

from . import numba as _numba  # noqa: F401  (registers the Numba dispatch)
from .jax import install as _install_jax
from .recurrent import (
    SECOND_DERIVATIVES,
    FusedRecurrent,
    FusedRecurrentGrad,
    UnsupportedError,
    fused_rnn,
    supported,
)

_install_jax()

__all__ = [
    "SECOND_DERIVATIVES",
    "FusedRecurrent",
    "FusedRecurrentGrad",
    "UnsupportedError",
    "fused_rnn",
    "supported",
]
