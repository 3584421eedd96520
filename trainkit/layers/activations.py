r"""Activation functions by name.

>>> import numpy as np, pytensor.tensor as pt
>>> get("relu")(pt.as_tensor(np.array([-1.0, 2.0], "float32"))).eval()
array([0., 2.], dtype=float32)
>>> get("rleu")
Traceback (most recent call last):
...
regularizers.errors.InvalidArgument: activation: unknown activation 'rleu'; choose from elu, gelu, leaky_relu, linear, relu, selu, sigmoid, softmax, softplus, softsign, tanh (closest: relu)
"""

import numpy as np
import pytensor.tensor as pt

from regularizers.registries import Registry

__all__ = ["get", "names"]


def _const(value, like):
    return pt.constant(np.asarray(value, dtype=like.dtype))


def linear(z):
    r""":math:`f(z) = z`."""
    return z


def relu(z):
    r""":math:`f(z) = \max(0, z)`."""
    return pt.maximum(z, _const(0, z))


def leaky_relu(z):
    r""":math:`f(z) = \max(0.01 z, z)` (Maas et al. 2013)."""
    return pt.maximum(z, _const(0.01, z) * z)


def elu(z):
    r""":math:`f(z) = z` for :math:`z > 0`, else :math:`e^z - 1` (Clevert et al. 2016)."""
    return pt.switch(pt.gt(z, _const(0, z)), z, pt.expm1(z))


def selu(z):
    r"""Scaled ELU with Klambauer et al.'s (2017) constants."""
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return _const(scale, z) * pt.switch(pt.gt(z, _const(0, z)), z, _const(alpha, z) * pt.expm1(z))


def gelu(z):
    r""":math:`f(z) = z\,\Phi(z)` with the tanh approximation (Hendrycks & Gimpel 2016)."""
    c = _const(np.sqrt(2 / np.pi), z)
    return _const(0.5, z) * z * (_const(1, z) + pt.tanh(c * (z + _const(0.044715, z) * z**3)))


def sigmoid(z):
    r""":math:`f(z) = 1 / (1 + e^{-z})`."""
    return pt.sigmoid(z)


def tanh(z):
    r""":math:`f(z) = \tanh z`."""
    return pt.tanh(z)


def softplus(z):
    r""":math:`f(z) = \log(1 + e^z)`."""
    return pt.softplus(z)


def softsign(z):
    r""":math:`f(z) = z / (1 + |z|)`."""
    return z / (_const(1, z) + pt.abs(z))


def softmax(z):
    r""":math:`f(z)_j = e^{z_j} / \sum_k e^{z_k}` over the last axis."""
    return pt.special.softmax(z, axis=-1)


_ACTIVATIONS = Registry("activation", "activation")
for _f in (linear, relu, leaky_relu, elu, selu, gelu, sigmoid, tanh, softplus, softsign, softmax):
    _ACTIVATIONS.add(_f.__name__, _f)


def names():
    """Sorted activation names."""
    return _ACTIVATIONS.names()


def get(name, argument="activation"):
    """The activation function called ``name``; InvalidArgument naming the closest."""
    return _ACTIVATIONS.lookup(name, argument)
