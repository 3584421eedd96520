r"""Losses between a network's output and its targets, with optional sample weights.

Every loss is a per-example error :math:`e_b` (averaged over output units;
for sequences, an example is one time step of one sequence) combined as a
weighted mean

.. math:: \mathcal{L}_0 = \frac{\sum_b w_b\, e_b}{\sum_b w_b}

which is the plain mean without weights. A loss function takes the output
layer's pre-activation and output, the targets and the weights (or None).
"""

import numpy as np
import pytensor.tensor as pt

from regularizers.registries import Registry

__all__ = ["get", "names", "mse", "mae", "xent", "binary_xent"]


def _weighted_mean(errors, weights):
    if weights is None:
        return pt.mean(errors)
    total = pt.sum(weights)
    # a batch whose weights are all zero counts for nothing (loss 0, gradient 0)
    safe = pt.switch(pt.gt(total, 0), total, pt.ones_like(total))
    return pt.sum(weights * errors) / safe


def mse(pre, out, target, weights=None):
    r"""Mean squared error, :math:`e_b = \operatorname{mean}_j (\hat y_{bj} - y_{bj})^2`."""
    return _weighted_mean(pt.mean(pt.sqr(out - target), axis=-1), weights)


def mae(pre, out, target, weights=None):
    r"""Mean absolute error, :math:`e_b = \operatorname{mean}_j |\hat y_{bj} - y_{bj}|`."""
    return _weighted_mean(pt.mean(pt.abs(out - target), axis=-1), weights)


def xent(pre, out, target, weights=None):
    r"""Categorical cross-entropy against integer labels, from the pre-activation.

    .. math:: e_b = -\log \operatorname{softmax}(a_b)_{y_b}

    computed with ``log_softmax`` of the output layer's pre-activation
    :math:`a` (stable; the output layer must use softmax). The label is
    picked with a one-hot mask built from a constant, not ``arange``, which
    PyTensor's JAX backend mishandles for 128 or more classes.
    """
    n_classes = pre.type.shape[-1]
    if n_classes is None:
        raise ValueError("xent: the output layer's size must be static (known when building)")
    logp = pt.special.log_softmax(pre, axis=-1)
    classes = pt.constant(np.arange(n_classes, dtype=target.dtype))
    onehot = pt.eq(pt.shape_padright(target), classes)
    errors = -pt.sum(pt.switch(onehot, logp, pt.zeros_like(logp)), axis=-1)
    return _weighted_mean(errors, weights)


def binary_xent(pre, out, target, weights=None):
    r"""Binary cross-entropy for targets in [0, 1], from the pre-activation.

    .. math:: e_b = \operatorname{mean}_j \left[\log(1 + e^{a_{bj}}) - y_{bj}\, a_{bj}\right]

    equal to :math:`-y \log \sigma(a) - (1-y) \log(1 - \sigma(a))` without its
    overflow (the output layer must use sigmoid).
    """
    return _weighted_mean(pt.mean(pt.softplus(pre) - target * pre, axis=-1), weights)


_LOSSES = Registry("loss", "loss")
for _f in (mse, mae, xent, binary_xent):
    _LOSSES.add(_f.__name__, _f)
#: the output activation a loss requires, if any
REQUIRED_ACTIVATION = {"xent": "softmax", "binary_xent": "sigmoid"}


def names():
    """Sorted loss names."""
    return _LOSSES.names()


def get(name):
    """The loss function called ``name``."""
    return _LOSSES.lookup(name)
