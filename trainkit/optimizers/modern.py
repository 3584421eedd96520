r"""Adam's successors, as PyTorch implements them: NAdam, RAdam, AdamW, Lion.

Each follows ``torch.optim`` (and, for Lion, the authors' reference code)
step for step, including where epsilon sits; the docstrings name every
difference from the papers. Decoupled weight decay is spelled
``decoupled_decay`` so it cannot be confused with trainkit's ``weight_decay``
regularizer, which adds a penalty to the loss instead.
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from .plumbing import (
    Hyperparameters,
    common_parameters,
    constant,
    global_state,
    param_state,
    prepare,
    state_dtype,
    step_counter,
)
from .registry import register

__all__ = ["adamw", "lion", "nadam", "radam"]


@register("nadam")
@common_parameters
def nadam(
    loss_or_grads,
    params,
    learning_rate=0.002,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    momentum_decay=0.004,
):
    r"""NAdam (Dozat, 2016): Adam with Nesterov momentum, PyTorch's variant.

    .. math::

        t &\leftarrow t + 1 \\
        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t \psi}\right), \quad
        \mu_{t+1} = \beta_1 \left(1 - \tfrac12\, 0.96^{(t+1) \psi}\right) \\
        \Pi &\leftarrow \Pi\, \mu_t \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        p &\leftarrow p - \eta \left(\frac{1 - \mu_t}{1 - \Pi}\, g
            + \frac{\mu_{t+1}}{1 - \Pi \mu_{t+1}}\, m\right)
            \Big/ \left(\sqrt{v / (1 - \beta_2^t)} + \epsilon\right)

    with :math:`p` a parameter, :math:`g` its gradient, :math:`m`, :math:`v`
    the moment estimates (states ``<param>/nadam_m``, ``<param>/nadam_v``,
    zero at first), :math:`t` the step (state ``nadam/t``), :math:`\Pi` the
    product of the momentum schedule so far (state ``nadam/mu_product``, one
    at first), :math:`\eta` the ``learning_rate``, :math:`\beta_1`,
    :math:`\beta_2` the ``beta1``, ``beta2``, :math:`\epsilon` the ``epsilon``
    and :math:`\psi` the ``momentum_decay``.

    Variant: PyTorch's ``NAdam`` (the paper's schedule
    :math:`0.96^{t/250}`, :math:`\psi = 0.004`); epsilon is added after
    bias-correcting the root. Keras 3's ``Nadam`` uses :math:`0.96^{t}`
    (:math:`\psi = 1`) and older Keras an explicit ``schedule_decay``.
    ``nadam/mu_product`` takes the widest dtype among the parameters.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    beta1 : float or symbolic scalar
        Decay of the first moment; the momentum schedule approaches it.
    beta2 : float or symbolic scalar
        Decay of the second moment estimate.
    epsilon : float or symbolic scalar
        Added to the corrected root for numerical stability.
    momentum_decay : float or symbolic scalar
        :math:`\psi`, how fast the momentum schedule warms up.

    Returns
    -------
    OrderedDict
        Parameters, moments, schedule product and counter -> update.

    References
    ----------
    .. [1] Dozat, T. (2016): Incorporating Nesterov momentum into Adam. ICLR
           workshop. https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = nadam((w**2).sum(), [w], learning_rate=0.1)
    >>> [v.name for v in updates]
    ['nadam/mu_product', 'w/nadam_m', 'w/nadam_v', 'w', 'nadam/t']
    """
    hyper = Hyperparameters(
        "nadam", learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon
    )
    schedule = Hyperparameters("nadam", beta1=beta1, momentum_decay=momentum_decay)
    triples = prepare("nadam", loss_or_grads, params)
    sdtype = state_dtype([p for _, p, _ in triples])
    t_prev = step_counter("nadam")
    t = t_prev + 1
    mu_product = global_state("nadam", "mu_product", np.asarray(1.0, dtype=sdtype))
    beta, psi = schedule.as_dtype(sdtype)
    tf = pt.cast(t, sdtype)
    half, base = constant(0.5, sdtype), constant(0.96, sdtype)
    mu_t = beta * (1 - half * base ** (tf * psi))
    mu_next = beta * (1 - half * base ** ((tf + 1) * psi))
    prod_t = mu_product * mu_t
    updates = OrderedDict([(mu_product, prod_t)])
    for name, param, grad in triples:
        lr, b1, b2, eps = hyper.as_dtype(param.dtype)
        mu, mu1, prod = (pt.cast(x, param.dtype) for x in (mu_t, mu_next, prod_t))
        m = param_state(name, param, "nadam", "m")
        v = param_state(name, param, "nadam", "v")
        m_t = b1 * m + (1 - b1) * grad
        v_t = b2 * v + (1 - b2) * grad**2
        denom = pt.sqrt(v_t / (1 - b2 ** pt.cast(t, param.dtype))) + eps
        direction = (1 - mu) / (1 - prod) * grad + mu1 / (1 - prod * mu1) * m_t
        updates[m] = m_t
        updates[v] = v_t
        updates[param] = param - lr * direction / denom
    updates[t_prev] = t
    return updates


@register("radam")
@common_parameters
def radam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    r"""RAdam (Liu et al., 2019): Adam with a rectified warm-up, as PyTorch.

    .. math::

        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        \rho_\infty &= 2 / (1 - \beta_2) - 1, \quad
        \rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t) \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\, \rho_\infty}
                          {(\rho_\infty - 4)(\rho_\infty - 2)\, \rho_t}} \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t}\, m \cdot
            \begin{cases}
              r_t \sqrt{1 - \beta_2^t} / (\sqrt{v} + \epsilon) & \rho_t > 5 \\
              1 & \text{otherwise (SGD with momentum)}
            \end{cases}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`m`, :math:`v`
    the moment estimates (states ``<param>/radam_m``, ``<param>/radam_v``,
    zero at first), :math:`t` the step (state ``radam/t``), :math:`\eta` the
    ``learning_rate``, :math:`\beta_1`, :math:`\beta_2` the ``beta1``,
    ``beta2`` and :math:`\epsilon` the ``epsilon``.

    Deviations: as PyTorch's ``RAdam``, the adaptive branch starts when
    :math:`\rho_t > 5` (the paper says 4) and epsilon is added to the
    uncorrected root :math:`\sqrt{v}`. :math:`\rho_t` is computed in the
    parameter's dtype, so with float32 parameters and a :math:`\beta_2` whose
    :math:`\rho_t` crosses 5 within about 0.05 of a whole step, the switch can
    come one step apart from PyTorch's (which uses Python floats).

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
    .. [1] Liu, L., Jiang, H., He, P., Chen, W., Liu, X., Gao, J. & Han, J.
           (2020): On the variance of the adaptive learning rate and beyond.
           ICLR. arXiv:1908.03265.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = radam((w**2).sum(), [w], learning_rate=0.1)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.8, 0.8], dtype=float32)
    """
    hyper = Hyperparameters(
        "radam", learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon
    )
    t_prev = step_counter("radam")
    t = t_prev + 1
    updates = OrderedDict()
    for name, param, grad in prepare("radam", loss_or_grads, params):
        lr, b1, b2, eps = hyper.as_dtype(param.dtype)
        tf = pt.cast(t, param.dtype)
        correction1, correction2 = 1 - b1**tf, 1 - b2**tf
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * tf * b2**tf / correction2
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        rect = pt.sqrt(pt.maximum(ratio, 0))
        m = param_state(name, param, "radam", "m")
        v = param_state(name, param, "radam", "v")
        m_t = b1 * m + (1 - b1) * grad
        v_t = b2 * v + (1 - b2) * grad**2
        adaptive = rect * pt.sqrt(correction2) / (pt.sqrt(v_t) + eps)
        scale = pt.switch(rho_t > 5, adaptive, pt.ones_like(adaptive))
        updates[m] = m_t
        updates[v] = v_t
        updates[param] = param - lr / correction1 * m_t * scale
    updates[t_prev] = t
    return updates


@register("adamw")
@common_parameters
def adamw(
    loss_or_grads,
    params,
    learning_rate=0.001,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    decoupled_decay=0.01,
):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    .. math::

        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        p &\leftarrow p - \eta \lambda p - \frac{\eta}{1 - \beta_1^t}\,
            \frac{m}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}

    with :math:`p` a parameter, :math:`g` its gradient (of the loss alone),
    :math:`m`, :math:`v` the moment estimates (states ``<param>/adamw_m``,
    ``<param>/adamw_v``, zero at first), :math:`t` the step (state
    ``adamw/t``), :math:`\eta` the ``learning_rate``, :math:`\beta_1`,
    :math:`\beta_2` the ``beta1``, ``beta2``, :math:`\epsilon` the
    ``epsilon`` and :math:`\lambda` the ``decoupled_decay``.

    As PyTorch's ``AdamW``: the decay is scaled by the learning rate
    (:math:`\eta\lambda p`; the paper uses a separate schedule multiplier
    :math:`\eta_t \lambda p`) and applies to every parameter given, biases
    included; pass only the weights to decay them alone. Epsilon is added
    after bias-correcting the root, unlike :func:`adam` here.

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
        Added to the corrected root for numerical stability.
    decoupled_decay : float or symbolic scalar
        :math:`\lambda`, the decay rate per unit learning rate (PyTorch's
        ``weight_decay``; not the ``weight_decay`` regularizer).

    Returns
    -------
    OrderedDict
        Parameters, moments and step counter -> update expression.

    References
    ----------
    .. [1] Loshchilov, I. & Hutter, F. (2019): Decoupled weight decay
           regularization. ICLR. arXiv:1711.05101.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = adamw((w**2).sum(), [w], learning_rate=0.1, decoupled_decay=0.5)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.85, 0.85], dtype=float32)
    """
    hyper = Hyperparameters(
        "adamw",
        learning_rate=learning_rate,
        beta1=beta1,
        beta2=beta2,
        epsilon=epsilon,
        decoupled_decay=decoupled_decay,
    )
    t_prev = step_counter("adamw")
    t = t_prev + 1
    updates = OrderedDict()
    for name, param, grad in prepare("adamw", loss_or_grads, params):
        lr, b1, b2, eps, decay = hyper.as_dtype(param.dtype)
        tf = pt.cast(t, param.dtype)
        m = param_state(name, param, "adamw", "m")
        v = param_state(name, param, "adamw", "v")
        m_t = b1 * m + (1 - b1) * grad
        v_t = b2 * v + (1 - b2) * grad**2
        denom = pt.sqrt(v_t) / pt.sqrt(1 - b2**tf) + eps
        updates[m] = m_t
        updates[v] = v_t
        updates[param] = param * (1 - lr * decay) - lr / (1 - b1**tf) * m_t / denom
    updates[t_prev] = t
    return updates


@register("lion")
@common_parameters
def lion(loss_or_grads, params, learning_rate=1e-4, beta1=0.9, beta2=0.99, decoupled_decay=0.0):
    r"""Lion (Chen et al., 2023): sign of an interpolated momentum.

    .. math::

        c &= \beta_1 m + (1 - \beta_1)\, g \\
        p &\leftarrow p - \eta \left(\operatorname{sign}(c) + \lambda p\right) \\
        m &\leftarrow \beta_2 m + (1 - \beta_2)\, g

    with :math:`p` a parameter, :math:`g` its gradient, :math:`m` the momentum
    (state ``<param>/lion_m``, zero at first), :math:`\eta` the
    ``learning_rate``, :math:`\beta_1`, :math:`\beta_2` the ``beta1``,
    ``beta2`` and :math:`\lambda` the ``decoupled_decay``. As the paper's
    Algorithm 2 and its PyTorch port (``lion-pytorch``): the decay is scaled
    by the learning rate and :math:`\operatorname{sign}(0) = 0`. Every step
    has size :math:`\eta` per coordinate, so use a learning rate 3-10 times
    smaller than AdamW's (and a decay 3-10 times larger).

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    beta1 : float or symbolic scalar
        Interpolation weight of the momentum in the step direction.
    beta2 : float or symbolic scalar
        Decay of the momentum.
    decoupled_decay : float or symbolic scalar
        :math:`\lambda`, the decay rate per unit learning rate.

    Returns
    -------
    OrderedDict
        Parameters and momenta -> update expression.

    References
    ----------
    .. [1] Chen, X., Liang, C., Huang, D., Real, E., Wang, K., Liu, Y., Pham,
           H., Dong, X., Luong, T., Hsieh, C.-J., Lu, Y. & Le, Q. V. (2023):
           Symbolic discovery of optimization algorithms. NeurIPS.
           arXiv:2302.06675.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.array([1.0, -1.0], dtype="float32"), name="w")
    >>> updates = lion((w**2).sum(), [w], learning_rate=0.1)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([ 0.9, -0.9], dtype=float32)
    """
    hyper = Hyperparameters(
        "lion",
        learning_rate=learning_rate,
        beta1=beta1,
        beta2=beta2,
        decoupled_decay=decoupled_decay,
    )
    updates = OrderedDict()
    for name, param, grad in prepare("lion", loss_or_grads, params):
        lr, b1, b2, decay = hyper.as_dtype(param.dtype)
        m = param_state(name, param, "lion", "m")
        direction = pt.sign(b1 * m + (1 - b1) * grad)
        updates[param] = param - lr * (direction + decay * param)
        updates[m] = b2 * m + (1 - b2) * grad
    return updates
