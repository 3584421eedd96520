r"""Adam, Adamax and AMSGrad with Lasagne's signatures, defaults and equations.

All three fold both bias corrections into one step size
:math:`\alpha_t` and add epsilon to the *uncorrected* root, as Lasagne (and
Algorithm 1's "efficient" form in the Adam paper) do. The step counter
``<algo>/t`` is an int64 shared scalar; it is cast to each parameter's dtype
before the corrections are computed.
"""

from collections import OrderedDict

import pytensor.tensor as pt

from .plumbing import Hyperparameters, common_parameters, param_state, prepare, step_counter
from .registry import register

__all__ = ["adam", "adamax", "amsgrad"]


@register("adam")
@common_parameters
def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    r"""Adam updates (Kingma & Ba, 2014), as Lasagne implements them.

    .. math::

        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        \alpha_t &= \eta\, \sqrt{1 - \beta_2^t} \,/\, (1 - \beta_1^t) \\
        p &\leftarrow p - \alpha_t\, \frac{m}{\sqrt{v} + \epsilon}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`m` and
    :math:`v` the first and second moment estimates (states
    ``<param>/adam_m``, ``<param>/adam_v``, zero at first), :math:`t` the
    step (state ``adam/t``), :math:`\eta` the ``learning_rate``,
    :math:`\beta_1`, :math:`\beta_2` the ``beta1``, ``beta2`` and
    :math:`\epsilon` the ``epsilon``.

    Deviation: epsilon is added to :math:`\sqrt{v}` before bias correction,
    as Lasagne and the paper's efficient form; PyTorch and Keras add it to
    :math:`\sqrt{v / (1 - \beta_2^t)}`. The two agree for
    :math:`\epsilon_{\text{here}} = \epsilon_{\text{torch}}
    \sqrt{1 - \beta_2^t}`; the difference matters only while :math:`v` is
    tiny.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    beta1 : float or symbolic scalar
        Decay of the first moment estimate.
    beta2 : float or symbolic scalar
        Decay of the second moment estimate.
    epsilon : float or symbolic scalar
        Added to the root for numerical stability.

    Returns
    -------
    OrderedDict
        Parameters, moments and step counter -> update expression.

    References
    ----------
    .. [1] Kingma, D. P. & Ba, J. (2014): Adam: A method for stochastic
           optimization. arXiv:1412.6980.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = adam((w**2).sum(), [w], learning_rate=0.1)
    >>> [v.name for v in updates]
    ['w/adam_m', 'w/adam_v', 'w', 'adam/t']
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.9, 0.9], dtype=float32)
    """
    return _adam_like("adam", loss_or_grads, params, learning_rate, beta1, beta2, epsilon)


@register("amsgrad")
@common_parameters
def amsgrad(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    r"""AMSGrad updates (Reddi et al., 2018), as Lasagne implements them.

    Adam with the running maximum of the second moment in the denominator:

    .. math::

        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        \hat v &\leftarrow \max(\hat v, v) \\
        \alpha_t &= \eta\, \sqrt{1 - \beta_2^t} \,/\, (1 - \beta_1^t) \\
        p &\leftarrow p - \alpha_t\, \frac{m}{\sqrt{\hat v} + \epsilon}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`m`, :math:`v`,
    :math:`\hat v` the states ``<param>/amsgrad_m``, ``<param>/amsgrad_v``,
    ``<param>/amsgrad_vhat`` (zero at first), :math:`t` the step (state
    ``amsgrad/t``), :math:`\eta` the ``learning_rate``, :math:`\beta_1`,
    :math:`\beta_2` the ``beta1``, ``beta2`` and :math:`\epsilon` the
    ``epsilon``.

    Deviation: the paper has no bias correction; Lasagne (followed here) and
    PyTorch's ``Adam(amsgrad=True)`` have it. PyTorch takes the maximum of the
    uncorrected :math:`v` like this, but adds epsilon after bias-correcting
    the root (see :func:`adam`).

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    beta1 : float or symbolic scalar
        Decay of the first moment estimate.
    beta2 : float or symbolic scalar
        Decay of the second moment estimate.
    epsilon : float or symbolic scalar
        Added to the root for numerical stability.

    Returns
    -------
    OrderedDict
        Parameters, moments and step counter -> update expression.

    References
    ----------
    .. [1] Reddi, S. J., Kale, S. & Kumar, S. (2018): On the convergence of
           Adam and beyond. ICLR. https://openreview.net/forum?id=ryQu7f-RZ

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = amsgrad((w**2).sum(), [w], learning_rate=0.1)
    >>> [v.name for v in updates]
    ['w/amsgrad_m', 'w/amsgrad_v', 'w/amsgrad_vhat', 'w', 'amsgrad/t']
    """
    return _adam_like("amsgrad", loss_or_grads, params, learning_rate, beta1, beta2, epsilon)


def _adam_like(algo, loss_or_grads, params, learning_rate, beta1, beta2, epsilon):
    hyper = Hyperparameters(
        algo, learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon
    )
    t_prev = step_counter(algo)
    t = t_prev + 1
    updates = OrderedDict()
    for name, param, grad in prepare(algo, loss_or_grads, params):
        lr, b1, b2, eps = hyper.as_dtype(param.dtype)
        tf = pt.cast(t, param.dtype)
        a_t = lr * pt.sqrt(1 - b2**tf) / (1 - b1**tf)
        m = param_state(name, param, algo, "m")
        v = param_state(name, param, algo, "v")
        m_t = b1 * m + (1 - b1) * grad
        v_t = b2 * v + (1 - b2) * grad**2
        updates[m] = m_t
        updates[v] = v_t
        if algo == "amsgrad":
            v_hat = param_state(name, param, algo, "vhat")
            v_t = updates[v_hat] = pt.maximum(v_hat, v_t)
        updates[param] = param - a_t * m_t / (pt.sqrt(v_t) + eps)
    updates[t_prev] = t
    return updates


@register("adamax")
@common_parameters
def adamax(loss_or_grads, params, learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8):
    r"""Adamax updates (Kingma & Ba, 2014): Adam with an infinity norm.

    .. math::

        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        u &\leftarrow \max(\beta_2 u, |g|) \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t}\, \frac{m}{u + \epsilon}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`m` the first
    moment and :math:`u` the decayed infinity norm (states
    ``<param>/adamax_m``, ``<param>/adamax_u``, zero at first), :math:`t` the
    step (state ``adamax/t``), :math:`\eta` the ``learning_rate``,
    :math:`\beta_1`, :math:`\beta_2` the ``beta1``, ``beta2`` and
    :math:`\epsilon` the ``epsilon``. As Lasagne.

    Deviation: the paper has no epsilon; PyTorch puts it inside the maximum,
    :math:`u = \max(\beta_2 u, |g| + \epsilon)`.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    beta1 : float or symbolic scalar
        Decay of the first moment estimate.
    beta2 : float or symbolic scalar
        Decay of the infinity norm.
    epsilon : float or symbolic scalar
        Added to :math:`u` for numerical stability.

    Returns
    -------
    OrderedDict
        Parameters, moments and step counter -> update expression.

    References
    ----------
    .. [1] Kingma, D. P. & Ba, J. (2014): Adam: A method for stochastic
           optimization. arXiv:1412.6980, section 7.1.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = adamax((w**2).sum(), [w], learning_rate=0.1)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.9, 0.9], dtype=float32)
    """
    hyper = Hyperparameters(
        "adamax", learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon
    )
    t_prev = step_counter("adamax")
    t = t_prev + 1
    updates = OrderedDict()
    for name, param, grad in prepare("adamax", loss_or_grads, params):
        lr, b1, b2, eps = hyper.as_dtype(param.dtype)
        a_t = lr / (1 - b1 ** pt.cast(t, param.dtype))
        m = param_state(name, param, "adamax", "m")
        u = param_state(name, param, "adamax", "u")
        m_t = b1 * m + (1 - b1) * grad
        u_t = pt.maximum(b2 * u, pt.abs(grad))
        updates[m] = m_t
        updates[u] = u_t
        updates[param] = param - a_t * m_t / (u_t + eps)
    updates[t_prev] = t
    return updates
