r"""Losses between a network's output and its targets, with optional sample weights.

Every loss is a per-example error :math:`e_b` (averaged over output units;
for sequences, an example is one time step of one sequence) combined as a
weighted mean

.. math:: \mathcal{L}_0 = \frac{\sum_b w_b\, e_b}{\sum_b w_b}

which is the plain mean without weights. A loss function takes the output
layer's pre-activation and output, the targets and the weights (or None).

A classifier's class weights (the ``class_weight`` training option) enter
as sample weights, :math:`w_b \leftarrow w_b\, c_{y_b}` (see
:func:`class_weighted`), so ``xent`` with them is torch's
``CrossEntropyLoss(weight=c)``: :math:`\sum_b c_{y_b} l_b / \sum_b c_{y_b}`.
Each loss has a numpy twin in :data:`NUMPY` (what ``evaluate`` reports).

>>> import numpy as np, pytensor.tensor as pt
>>> d = pt.constant(np.array([[0.5], [3.0]], "float32"))
>>> float(huber(d, d, pt.zeros_like(d)).eval())  # (0.5 * 0.5**2 + (3 - 0.5)) / 2
1.3125
"""

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument
from regularizers.registries import Registry

__all__ = [
    "NUMPY",
    "binary_xent",
    "class_weighted",
    "class_weights",
    "get",
    "gll",
    "hinge",
    "huber",
    "mae",
    "mse",
    "names",
    "xent",
]


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


def huber(pre, out, target, weights=None):
    r"""Huber loss with :math:`\delta = 1`, as ``torch.nn.HuberLoss()``.

    .. math:: e_b = \operatorname{mean}_j h(\hat y_{bj} - y_{bj}), \qquad
              h(d) = \begin{cases} d^2 / 2 & |d| \le 1 \\ |d| - 1/2 & |d| > 1 \end{cases}
    """
    d = pt.abs(out - target)
    one = np.asarray(1.0, dtype=out.dtype)
    half = np.asarray(0.5, dtype=out.dtype)
    h = pt.switch(pt.le(d, one), half * pt.sqr(d), d - half)
    return _weighted_mean(pt.mean(h, axis=-1), weights)


def _static_classes(pre, name):
    n_classes = pre.type.shape[-1]
    if n_classes is None:
        raise ValueError(f"{name}: the output layer's size must be static (known when building)")
    return n_classes


def hinge(pre, out, target, weights=None):
    r"""Multi-class hinge loss of Crammer and Singer (2001) on the output scores.

    .. math:: e_b = \max\left(0,\ 1 + \max_{j \ne y_b} s_{bj} - s_{by_b}\right)

    with :math:`s` the output layer's pre-activation (the output layer is
    linear; ``predict`` is the arg max of the scores and ``predict_proba``
    returns the scores themselves). This is not torch's ``MultiMarginLoss``,
    which sums the margins of every wrong class (Weston and Watkins).
    """
    n_classes = _static_classes(pre, "hinge")
    classes = pt.constant(np.arange(n_classes, dtype=target.dtype))
    onehot = pt.eq(pt.shape_padright(target), classes)
    right = pt.sum(pt.switch(onehot, pre, pt.zeros_like(pre)), axis=-1)
    lowest = np.asarray(np.finfo(pre.dtype).min, dtype=pre.dtype)
    wrong = pt.max(pt.switch(onehot, lowest, pre), axis=-1)
    one = np.asarray(1.0, dtype=pre.dtype)
    return _weighted_mean(pt.maximum(one + wrong - right, pt.zeros_like(right)), weights)


def gll(pre, out, target, weights=None):
    r"""Gaussian negative log-likelihood of a predicted mean and log-variance (theanets' GLL).

    The output has twice the targets' width: its first half is the mean
    :math:`\mu`, its second half the log-variance :math:`v = \log \sigma^2`:

    .. math:: e_b = \operatorname{mean}_j \tfrac12 \left(v_{bj} + (y_{bj} - \mu_{bj})^2 e^{-v_{bj}}\right)

    This is ``torch.nn.GaussianNLLLoss(full=False)`` with ``var = exp(v)``:
    the constant :math:`\tfrac12 \log 2\pi` per target is left out (add it
    for ``full=True``), and no variance clamp is needed since
    :math:`e^{v} > 0`. Predicting the log-variance keeps the variance positive
    without a constraint.
    """
    width = out.type.shape[-1]  # static where it can be (JAX slices with static bounds only)
    k = width // 2 if width is not None else out.shape[-1] // 2
    mean, logvar = out[..., :k], out[..., k:]
    half = np.asarray(0.5, dtype=out.dtype)
    errors = half * (logvar + pt.sqr(target - mean) * pt.exp(-logvar))
    return _weighted_mean(pt.mean(errors, axis=-1), weights)


_LOSSES = Registry("loss", "loss")
for _f in (mse, mae, huber, gll, xent, hinge, binary_xent):
    _LOSSES.add(_f.__name__, _f)
#: the output activation a loss requires, if any
REQUIRED_ACTIVATION = {"xent": "softmax", "binary_xent": "sigmoid", "hinge": "linear"}
#: losses that take the ``class_weight`` training option
CLASS_WEIGHTED = ("xent", "hinge")
#: losses whose output layer has twice the targets' width (mean and log-variance)
DOUBLE_WIDTH = ("gll",)


def class_weights(value, n_classes):
    """The ``class_weight`` option (a list, or a dict ``{class: weight}``) as a vector of ``n_classes``.

    Classes left out of a dict weigh 1. Raises InvalidArgument (one line)
    for a list of the wrong length, a class outside ``[0, n_classes)``, or a
    weight that is negative, not finite or not a number; all-zero weights
    are refused too (the loss would be 0/0).

    >>> class_weights({1: 3.0}, 3).tolist(), class_weights([1, 2], 2).tolist()
    ([1.0, 3.0, 1.0], [1.0, 2.0])
    """
    if isinstance(value, dict):
        out = np.ones(n_classes)
        for cls, weight in value.items():
            if isinstance(cls, str) and cls.lstrip("-").isdigit():  # TOML/JSON keys are strings
                cls = int(cls)
            if isinstance(cls, bool) or not isinstance(cls, int | np.integer):
                raise InvalidArgument(
                    "class_weight", f"classes must be ints in [0, {n_classes}), got {cls!r}", value
                )
            if not 0 <= cls < n_classes:
                raise InvalidArgument(
                    "class_weight",
                    f"class {cls} is outside [0, {n_classes}) (the output layer has "
                    f"{n_classes} classes)",
                    value,
                )
            out[cls] = _weight(weight, value)
    else:
        if len(value) != n_classes:
            raise InvalidArgument(
                "class_weight",
                f"a list needs one weight per class, {n_classes}, got {len(value)}",
                value,
            )
        out = np.array([_weight(w, value) for w in value])
    if not out.any():
        raise InvalidArgument("class_weight", "at least one class needs a positive weight", value)
    return out


def _weight(weight, value):
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float | np.integer | np.floating)
        or not np.isfinite(weight)
        or weight < 0
    ):
        raise InvalidArgument(
            "class_weight", f"weights must be finite numbers >= 0, got {weight!r}", value
        )
    return float(weight)


def class_weighted(weights, labels, vector, dtype):
    r"""Sample weights times each example's class weight, :math:`w_b\, c_{y_b}` (``weights`` may be None)."""
    n_classes = len(vector)
    classes = pt.constant(np.arange(n_classes, dtype=labels.dtype))
    onehot = pt.eq(pt.shape_padright(labels), classes)
    picked = pt.sum(pt.switch(onehot, pt.constant(np.asarray(vector, dtype=dtype)), 0), axis=-1)
    picked = pt.cast(picked, dtype)
    return picked if weights is None else weights * picked


# -- numpy twins (what ``evaluate`` reports), per-example errors ---------------------


def _np_hinge(scores, labels):
    right = np.take_along_axis(scores, labels[..., None], axis=-1)[..., 0]
    others = np.where(np.eye(scores.shape[-1], dtype=bool)[labels], -np.inf, scores)
    return np.maximum(0.0, 1.0 + others.max(axis=-1) - right)


def _np_gll(out, target):
    k = target.shape[-1]
    mean, logvar = out[..., :k], out[..., k:]
    return (0.5 * (logvar + (target - mean) ** 2 * np.exp(-logvar))).mean(axis=-1)


def _np_huber(out, target):
    d = np.abs(out - target)
    return np.where(d <= 1, 0.5 * d**2, d - 0.5).mean(axis=-1)


#: loss name -> numpy per-example error of (output, target) for losses ``evaluate`` has no
#: other formula for
NUMPY = {"huber": _np_huber, "gll": _np_gll, "hinge": _np_hinge}


def names():
    """Sorted loss names."""
    return _LOSSES.names()


def get(name):
    """The loss function called ``name``."""
    return _LOSSES.lookup(name)
