r"""Per-coordinate step sizes from running gradient magnitudes, as Lasagne.

Adagrad, RMSProp and Adadelta with ``lasagne.updates``' signatures, defaults
and equations (epsilon inside the square root).
"""

from collections import OrderedDict

import pytensor.tensor as pt

from .plumbing import Hyperparameters, common_parameters, param_state, prepare
from .registry import register

__all__ = ["adadelta", "adagrad", "rmsprop"]


@register("adagrad")
@common_parameters
def adagrad(loss_or_grads, params, learning_rate=1.0, epsilon=1e-6):
    r"""Adagrad: divide by the root of the summed squared gradients.

    .. math::

        a &\leftarrow a + g^2 \\
        p &\leftarrow p - \eta\, \frac{g}{\sqrt{a + \epsilon}}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`a` the
    accumulated squared gradient (state ``<param>/adagrad_accu``, zero at
    first), :math:`\eta` the ``learning_rate`` and :math:`\epsilon` the
    ``epsilon``. As Lasagne. PyTorch's ``Adagrad`` adds epsilon outside the
    root, :math:`g / (\sqrt{a} + \epsilon)`, with ``eps=1e-10``.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    epsilon : float or symbolic scalar
        Added under the square root for numerical stability.

    Returns
    -------
    OrderedDict
        Parameter and accumulator -> update expression.

    References
    ----------
    .. [1] Duchi, J., Hazan, E. & Singer, Y. (2011): Adaptive subgradient
           methods for online learning and stochastic optimization. JMLR 12.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = adagrad((w**2).sum(), [w], learning_rate=0.1)
    >>> [v.name for v in updates]
    ['w/adagrad_accu', 'w']
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.9, 0.9], dtype=float32)
    """
    hyper = Hyperparameters("adagrad", learning_rate=learning_rate, epsilon=epsilon)
    updates = OrderedDict()
    for name, param, grad in prepare("adagrad", loss_or_grads, params):
        lr, eps = hyper.as_dtype(param.dtype)
        accu = param_state(name, param, "adagrad", "accu")
        accu_new = accu + grad**2
        updates[accu] = accu_new
        updates[param] = param - lr * grad / pt.sqrt(accu_new + eps)
    return updates


@register("rmsprop")
@common_parameters
def rmsprop(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-6):
    r"""RMSProp: divide by the root of a running mean of squared gradients.

    .. math::

        a &\leftarrow \rho\, a + (1 - \rho)\, g^2 \\
        p &\leftarrow p - \eta\, \frac{g}{\sqrt{a + \epsilon}}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`a` the running
    mean (state ``<param>/rmsprop_accu``, zero at first), :math:`\eta` the
    ``learning_rate``, :math:`\rho` the ``rho`` and :math:`\epsilon` the
    ``epsilon``. As Lasagne. PyTorch's ``RMSprop`` adds epsilon outside the
    root, :math:`g / (\sqrt{a} + \epsilon)`; Keras's adds it outside too.
    downhill's ``RMSProp`` is Graves' centred variant, not this one.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    rho : float or symbolic scalar
        Decay of the running mean, in [0, 1).
    epsilon : float or symbolic scalar
        Added under the square root for numerical stability.

    Returns
    -------
    OrderedDict
        Parameter and running mean -> update expression.

    References
    ----------
    .. [1] Tieleman, T. & Hinton, G. (2012): Lecture 6.5 - rmsprop. COURSERA:
           Neural Networks for Machine Learning.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = rmsprop((w**2).sum(), [w], learning_rate=0.01, rho=0.75)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.98, 0.98], dtype=float32)
    """
    hyper = Hyperparameters("rmsprop", learning_rate=learning_rate, rho=rho, epsilon=epsilon)
    updates = OrderedDict()
    for name, param, grad in prepare("rmsprop", loss_or_grads, params):
        lr, r, eps = hyper.as_dtype(param.dtype)
        accu = param_state(name, param, "rmsprop", "accu")
        accu_new = r * accu + (1 - r) * grad**2
        updates[accu] = accu_new
        updates[param] = param - lr * grad / pt.sqrt(accu_new + eps)
    return updates


@register("adadelta")
@common_parameters
def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6):
    r"""Adadelta: scale by the ratio of running RMS step to running RMS gradient.

    .. math::

        a &\leftarrow \rho\, a + (1 - \rho)\, g^2 \\
        d &= g\, \frac{\sqrt{s + \epsilon}}{\sqrt{a + \epsilon}} \\
        p &\leftarrow p - \eta\, d \\
        s &\leftarrow \rho\, s + (1 - \rho)\, d^2

    with :math:`p` a parameter, :math:`g` its gradient, :math:`a` the running
    mean of squared gradients (state ``<param>/adadelta_accu``), :math:`s` the
    running mean of squared steps (state ``<param>/adadelta_delta_accu``; the
    step :math:`d` uses its old value), both zero at first, :math:`\eta` the
    ``learning_rate``, :math:`\rho` the ``rho`` and :math:`\epsilon` the
    ``epsilon``. As Lasagne and PyTorch's ``Adadelta``; the paper has no
    learning rate (:math:`\eta = 1`).

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        Scales the step :math:`d`; 1 in the paper.
    rho : float or symbolic scalar
        Decay of both running means, in [0, 1).
    epsilon : float or symbolic scalar
        Added under both square roots; it also sets the size of the first
        steps, since :math:`s` starts at zero.

    Returns
    -------
    OrderedDict
        Parameter and running means -> update expression.

    References
    ----------
    .. [1] Zeiler, M. D. (2012): ADADELTA: An adaptive learning rate method.
           arXiv:1212.5701.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = adadelta((w**2).sum(), [w])
    >>> [v.name for v in updates]
    ['w/adadelta_accu', 'w', 'w/adadelta_delta_accu']
    """
    hyper = Hyperparameters("adadelta", learning_rate=learning_rate, rho=rho, epsilon=epsilon)
    updates = OrderedDict()
    for name, param, grad in prepare("adadelta", loss_or_grads, params):
        lr, r, eps = hyper.as_dtype(param.dtype)
        accu = param_state(name, param, "adadelta", "accu")
        delta_accu = param_state(name, param, "adadelta", "delta_accu")
        accu_new = r * accu + (1 - r) * grad**2
        updates[accu] = accu_new
        step = grad * pt.sqrt(delta_accu + eps) / pt.sqrt(accu_new + eps)
        updates[param] = param - lr * step
        updates[delta_accu] = r * delta_accu + (1 - r) * step**2
    return updates
