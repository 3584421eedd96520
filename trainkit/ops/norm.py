r"""Layer and batch normalisation over the feature (last) axis, as torch computes them.

Plain PyTensor (JAX, Numba, ``FAST_COMPILE``; float32 and float64); no
parameters are created here. Each function returns the normalised value
before scale, :math:`\hat x`, as well as the output
:math:`y = g \odot \hat x + b`, so a layer can name both.

>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> x = pt.matrix("x")
>>> one, zero = pt.constant(np.ones(2, x.dtype)), pt.constant(np.zeros(2, x.dtype))
>>> norm, out = layer_norm(x, one, zero, eps=0.0)
>>> pytensor.function([x], out)(np.array([[1.0, 3.0]], x.dtype))
array([[-1.,  1.]]...)
>>> float(running_update(pt.constant(np.float32(1.0)), pt.constant(np.float32(2.0))).eval())
1.1
"""

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument

from .conv import static_shape

__all__ = ["batch_norm_infer", "batch_norm_train", "layer_norm", "running_update"]


def _const(value, like):
    return pt.constant(np.asarray(value, dtype=like.dtype))


def _eps(eps, like):
    if not isinstance(eps, int | float) or isinstance(eps, bool) or eps < 0:
        raise InvalidArgument("eps", f"must be a number >= 0, got {eps!r}", value=eps)
    return _const(eps, like)


def layer_norm(x, g, b, eps=1e-5):
    r"""Layer normalisation over the last axis (``torch.nn.functional.layer_norm``).

    .. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad
              y = g \odot \hat x + b

    with :math:`\mu` and the biased variance :math:`\sigma^2` of each
    example's (each step's) features.

    Returns
    -------
    (TensorVariable, TensorVariable)
        :math:`\hat x` and :math:`y`, both shaped like ``x``.
    """
    g, b = static_shape(g), static_shape(b)
    mean = pt.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = pt.mean(pt.sqr(centred), axis=-1, keepdims=True)
    norm = centred / pt.sqrt(var + _eps(eps, x))
    return norm, norm * g + b


def batch_norm_train(x, g, b, eps=1e-5, mask=None, parts=None):
    r"""Batch normalisation with the batch's statistics (torch's training mode).

    Statistics are over every axis but the last (batch, and time or space),
    over real steps only when a ``(batch, time)`` 0/1 ``mask`` is given:

    .. math:: n = \sum m, \quad \mu = \frac{\sum m\, x}{n}, \quad
              \sigma^2 = \frac{\sum m\,(x-\mu)^2}{n}, \quad
              \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad
              y = g \odot \hat x + b

    normalising with the biased variance, as torch does; the unbiased
    :math:`\sigma^2 n/(n-1)` is returned for the running statistics (with
    :math:`n = 1` it is :math:`\sigma^2 = 0`, where torch gives inf/NaN).
    Padded steps are normalised too (finite, and ignored downstream).

    ``parts``, a dict, receives the symbolic ``mean``, biased ``var``, count
    ``n`` and ``mask`` (None without one), which data-parallel training
    replaces by the global batch's (:mod:`trainkit.training.sync_batchnorm`);
    the graph is the same with or without it.

    Returns
    -------
    (normalised, output, batch_mean, batch_unbiased_var)
        The first two shaped like ``x``; the statistics ``(features,)``.
    """
    g, b = static_shape(g), static_shape(b)
    axes = tuple(range(x.ndim - 1))
    if mask is None:
        mean = pt.mean(x, axis=axes)
        var = pt.mean(pt.sqr(x - mean), axis=axes)
        n = pt.cast(x.size // x.shape[-1], x.dtype)
    else:
        if x.ndim != 3:
            raise InvalidArgument(
                "batch_norm_train", f"a mask needs (batch, time, F) input, got {x.ndim}-d"
            )
        m = pt.cast(mask, x.dtype)[:, :, None]
        n = pt.sum(m)
        safe_n = pt.maximum(n, _const(1, x))
        mean = pt.sum(m * x, axis=axes) / safe_n
        var = pt.sum(m * pt.sqr(x - mean), axis=axes) / safe_n
    unbiased = var * n / pt.maximum(n - _const(1, x), _const(1, x))
    if parts is not None:
        parts.update(x=x, mask=None if mask is None else m, mean=mean, var=var)
    norm = (x - mean) / pt.sqrt(var + _eps(eps, x))
    return norm, norm * g + b, mean, unbiased


def batch_norm_infer(x, g, b, running_mean, running_var, eps=1e-5):
    r"""Batch normalisation with running statistics (torch's evaluation mode).

    .. math:: \hat x = \frac{x - \bar\mu}{\sqrt{\bar\sigma^2 + \epsilon}}, \quad y = g \odot \hat x + b

    Returns
    -------
    (TensorVariable, TensorVariable)
        :math:`\hat x` and :math:`y`.
    """
    g, b = static_shape(g), static_shape(b)
    running_mean, running_var = static_shape(running_mean), static_shape(running_var)
    norm = (x - running_mean) / pt.sqrt(running_var + _eps(eps, x))
    return norm, norm * g + b


def running_update(running, batch_stat, momentum=0.1):
    r"""Torch's running average: :math:`(1 - \text{momentum})\, r + \text{momentum}\, s`.

    The result has ``running``'s dtype (a shared variable's update must).
    """
    if (
        not isinstance(momentum, int | float)
        or isinstance(momentum, bool)
        or not 0 <= momentum <= 1
    ):
        raise InvalidArgument(
            "momentum", f"must be a number in [0, 1], got {momentum!r}", value=momentum
        )
    keep = _const(1 - momentum, running)
    new = keep * running + _const(momentum, running) * pt.cast(batch_stat, running.dtype)
    return pt.cast(new, running.dtype)
