r"""The update rules trainkit inherits from downhill: NAG, Rprop and ESGD.

Same equations as ``downhill`` (lmjohns3/downhill, ``first_order.py``,
``adaptive.py``, ``base.py``), written as Lasagne-style functions. Where a
hyperparameter was spelled differently in downhill, the docstring says so.
"""

import zlib
from collections import OrderedDict

import pytensor.tensor as pt
from pytensor.gradient import pullback
from pytensor.graph.traversal import ancestors

from .plumbing import Hyperparameters, common_parameters, param_state, prepare, scalar_value
from .registry import register

__all__ = ["esgd", "nag", "rprop"]


@register("nag")
@common_parameters
def nag(loss_or_grads, params, learning_rate=1e-4, momentum=0.9):
    r"""Nesterov's accelerated gradient in Sutskever's form, as downhill.

    .. math::

        v_t &= \mu v_{t-1} - \eta\, g \\
        p &\leftarrow p + \mu^2 v_{t-1} - (1 + \mu)\, \eta\, g

    with :math:`p` a parameter, :math:`g` its gradient, :math:`v` its velocity
    (state ``<param>/nag_velocity``, zero at first), :math:`\eta` the
    ``learning_rate`` and :math:`\mu` the ``momentum``.

    This is Sutskever et al.'s look-ahead update :math:`v_t = \mu v_{t-1} -
    \eta \nabla L(\theta + \mu v_{t-1})`, :math:`\theta \leftarrow \theta +
    v_t`, rewritten (Bengio et al. 2013, eq. 7) for the stored parameter
    :math:`p = \theta + \mu v` so that only the gradient at :math:`p` is
    needed. In exact arithmetic it equals :func:`nesterov_momentum`; it is
    kept under downhill's name, defaults and expression.

    Deviation: downhill's default ``momentum`` was 0, which makes NAG plain
    SGD; here it is 0.9.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta` (downhill's default).
    momentum : float or symbolic scalar
        The velocity decay :math:`\mu`.

    Returns
    -------
    OrderedDict
        Velocity and parameter -> update expression.

    References
    ----------
    .. [1] Sutskever, I., Martens, J., Dahl, G. & Hinton, G. (2013): On the
           importance of initialization and momentum in deep learning. ICML.
    .. [2] Bengio, Y., Boulanger-Lewandowski, N. & Pascanu, R. (2013):
           Advances in optimizing recurrent networks. ICASSP. arXiv:1212.0901.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = nag((w**2).sum(), [w], learning_rate=0.1, momentum=0.5)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([0.7, 0.7], dtype=float32)
    """
    hyper = Hyperparameters("nag", learning_rate=learning_rate, momentum=momentum)
    updates = OrderedDict()
    for name, param, grad in prepare("nag", loss_or_grads, params):
        lr, mu = hyper.as_dtype(param.dtype)
        velocity = param_state(name, param, "nag", "velocity")
        delta = -lr * grad
        updates[velocity] = mu * velocity + delta
        updates[param] = param + mu**2 * velocity + (1 + mu) * delta
    return updates


@register("rprop", schedulable=False)
@common_parameters
def rprop(
    loss_or_grads,
    params,
    learning_rate=1e-4,
    rprop_increase=1.01,
    rprop_decrease=0.99,
    rprop_min_step=0.0,
    rprop_max_step=100.0,
):
    r"""Resilient backpropagation, downhill's iRprop- variant.

    Each coordinate has its own step size, grown while its gradient keeps its
    sign and shrunk when the sign flips; only the sign of the gradient moves
    the parameter:

    .. math::

        \Delta &\leftarrow \operatorname{clip}\Big(\Delta \cdot
            \begin{cases} \eta_+ & g\, g_{\text{prev}} > 0 \\
                          \eta_- & g\, g_{\text{prev}} < 0 \\
                          1 & \text{otherwise} \end{cases},\
            \Delta_{\min}, \Delta_{\max}\Big) \\
        g' &= \begin{cases} 0 & g\, g_{\text{prev}} < 0 \\
                            g & \text{otherwise} \end{cases} \\
        p &\leftarrow p - \operatorname{sign}(g')\, \Delta \\
        g_{\text{prev}} &\leftarrow g'

    with :math:`p` a parameter, :math:`g` its gradient, :math:`\Delta` the
    step sizes (state ``<param>/rprop_step``, starting at the
    ``learning_rate``), :math:`g_{\text{prev}}` the previous gradient (state
    ``<param>/rprop_grad``, zero at first), :math:`\eta_+`, :math:`\eta_-` the
    ``rprop_increase``, ``rprop_decrease`` and :math:`\Delta_{\min}`,
    :math:`\Delta_{\max}` the ``rprop_min_step``, ``rprop_max_step``.

    This is iRprop- (Igel & Husken 2000, Algorithm 4) with downhill's gentle
    defaults (Riedmiller & Braun use :math:`\eta_+ = 1.2`, :math:`\eta_- =
    0.5`, as PyTorch's ``Rprop``; PyTorch also skips the step on a sign flip,
    as here).

    Deviation: ``learning_rate`` only sets the initial step sizes, so it is
    read once, when the updates are built (a number or a shared variable's
    current value); later changes to a shared ``learning_rate`` do nothing.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or shared scalar
        The initial step size of every coordinate.
    rprop_increase : float or symbolic scalar
        Factor :math:`\eta_+ > 1` applied while the sign holds.
    rprop_decrease : float or symbolic scalar
        Factor :math:`\eta_- < 1` applied when the sign flips.
    rprop_min_step : float or symbolic scalar
        Smallest step size :math:`\Delta_{\min}`.
    rprop_max_step : float or symbolic scalar
        Largest step size :math:`\Delta_{\max}`.

    Returns
    -------
    OrderedDict
        Parameter, previous gradient and step sizes -> update expression.

    References
    ----------
    .. [1] Riedmiller, M. & Braun, H. (1993): A direct adaptive method for
           faster backpropagation learning: the RPROP algorithm. IEEE ICNN.
    .. [2] Igel, C. & Husken, M. (2000): Improving the Rprop learning
           algorithm. Proc. Second International ICSC Symposium on Neural
           Computation.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.array([1.0, -1.0], dtype="float32"), name="w")
    >>> updates = rprop((w**2).sum(), [w], learning_rate=0.5)
    >>> pytensor.function([], [], updates=updates)(); w.get_value()
    []
    array([ 0.5, -0.5], dtype=float32)
    """
    initial = scalar_value("rprop", "learning_rate", learning_rate)
    Hyperparameters("rprop", learning_rate=initial)  # validates it
    hyper = Hyperparameters(
        "rprop",
        rprop_increase=rprop_increase,
        rprop_decrease=rprop_decrease,
        rprop_min_step=rprop_min_step,
        rprop_max_step=rprop_max_step,
    )
    updates = OrderedDict()
    for name, param, grad in prepare("rprop", loss_or_grads, params):
        increase, decrease, min_step, max_step = hyper.as_dtype(param.dtype)
        grad_prev = param_state(name, param, "rprop", "grad")
        step_prev = param_state(name, param, "rprop", "step", init=initial)
        test = grad * grad_prev
        factor = pt.switch(test > 0, increase, pt.switch(test < 0, decrease, 1))
        step = pt.clip(step_prev * factor, min_step, max_step)
        grad = pt.switch(test < 0, pt.zeros_like(grad), grad)
        updates[param] = param - pt.sign(grad) * step
        updates[grad_prev] = grad
        updates[step_prev] = step
    return updates


@register("esgd")
def esgd(loss_or_grads, params, learning_rate=1e-4, rho=0.95, epsilon=1e-8):
    r"""Equilibrated SGD (Dauphin et al., 2015), as downhill implements it.

    Divides the gradient by a running root-mean-square of Hessian-vector
    products with random Gaussian vectors, an estimate of the row norms of
    the Hessian (the equilibration preconditioner):

    .. math::

        r &\sim \mathcal{N}(0, I) \\
        D &\leftarrow \rho\, D + (1 - \rho)\, (H r)^2 \\
        p &\leftarrow p - \eta\, \frac{g}{\sqrt{D} + \epsilon}

    with :math:`p` a parameter, :math:`g` its gradient, :math:`H` the Hessian
    of the loss, :math:`r` a fresh standard normal vector each step (drawn
    from the shared generator ``esgd/rng``), :math:`D` the running mean of
    squared products (state ``<param>/esgd_curvature``, zero at first),
    :math:`\eta` the ``learning_rate``, :math:`\rho` the ``rho`` and
    :math:`\epsilon` the ``epsilon``. :math:`Hr` is one L-op of the gradient
    graph (Pearlmutter's trick), costing about one more backward pass.

    Deviations: the paper averages :math:`(Hr)^2` over all steps,
    :math:`\sqrt{D_{\text{sum}}/t}`; downhill and this function use an
    exponential moving average. downhill spelled :math:`\rho` as
    ``rms_halflife`` :math:`h` with :math:`\rho = 2^{-1/h}` (default 14, i.e.
    :math:`\rho \approx 0.9517`) and :math:`\epsilon` as ``rms_regularizer``.
    :math:`Hr` here is the product with the full Hessian over all parameters,
    as in the paper; downhill multiplied each parameter's diagonal block only.

    Parameters
    ----------
    loss_or_grads : scalar variable or list of variables
        The scalar loss, or its gradients as symbolic expressions of
        ``params`` (e.g. from ``pytensor.grad``, possibly clipped): :math:`Hr`
        is the L-op of these expressions, so gradients that do not depend on
        the parameters are refused.
    params : sequence or mapping of shared variables
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    rho : float or symbolic scalar
        Decay of the running mean :math:`D`, in [0, 1).
    epsilon : float or symbolic scalar
        Added to :math:`\sqrt{D}` for numerical stability.

    Returns
    -------
    OrderedDict
        Parameters, curvature estimates and the generator -> update
        expression.

    References
    ----------
    .. [1] Dauphin, Y., de Vries, H. & Bengio, Y. (2015): Equilibrated
           adaptive learning rates for non-convex optimization. NeurIPS.
           arXiv:1502.04390.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = esgd((w**2).sum(), [w], learning_rate=0.1)
    >>> [v.name for v in updates]
    ['w/esgd_curvature', 'w', 'esgd/rng']
    """
    hyper = Hyperparameters("esgd", learning_rate=learning_rate, rho=rho, epsilon=epsilon)
    triples = prepare("esgd", loss_or_grads, params)
    if isinstance(loss_or_grads, list | tuple):
        wrt = {p for _, p, _ in triples}
        for name, _, grad in triples:
            if not wrt & set(ancestors([grad])):
                raise TypeError(
                    f"esgd: the gradient given for {name} does not depend on the parameters, so "
                    f"its Hessian-vector product is undefined; pass the loss, or gradients "
                    f"built from it with pytensor.grad"
                )
    # a fixed default seed, as the regularizers' generators; the Trainer reseeds
    # it from its own ``seed``, and ``rng.set_value`` reseeds it by hand
    rng = pt.random.shared_rng(seed=zlib.crc32(b"esgd/rng"), name="esgd/rng")
    next_rng, draws = rng, []
    for _, param, _ in triples:
        next_rng, r = next_rng.normal(0, 1, size=param.shape, dtype=param.dtype)
        draws.append(r)
    params_, grads = [p for _, p, _ in triples], [g for _, _, g in triples]
    # H is symmetric, so the L-op of the gradient with cotangent r is H r.
    hvs = pullback(grads, params_, draws, disconnected_inputs="ignore")
    updates = OrderedDict()
    for (name, param, grad), hv in zip(triples, hvs, strict=True):
        lr, r_, eps = hyper.as_dtype(param.dtype)
        curvature = param_state(name, param, "esgd", "curvature")
        d_t = r_ * curvature + (1 - r_) * pt.cast(hv, param.dtype) ** 2
        updates[curvature] = d_t
        updates[param] = param - lr * grad / (pt.sqrt(d_t) + eps)
    updates[rng] = next_rng
    return updates
