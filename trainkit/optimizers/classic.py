r"""Plain and momentum SGD, with Lasagne's signatures, defaults and equations.

Momentum is composition by post-processing: :func:`apply_momentum` and
:func:`apply_nesterov_momentum` take any update dictionary and return a copy
with a velocity per parameter, exactly as ``lasagne.updates`` does.
"""

from collections import OrderedDict

from .plumbing import Hyperparameters, common_parameters, named_params, param_state, prepare
from .registry import register

__all__ = ["apply_momentum", "apply_nesterov_momentum", "momentum", "nesterov_momentum", "sgd"]


@register("sgd")
@common_parameters
def sgd(loss_or_grads, params, learning_rate):
    r"""Stochastic gradient descent: step against the gradient.

    .. math::

        p \leftarrow p - \eta\, g

    with :math:`p` a parameter, :math:`g` its gradient and :math:`\eta` the
    ``learning_rate``. Same as ``lasagne.updates.sgd`` and ``torch.optim.SGD``
    without momentum.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.

    Returns
    -------
    OrderedDict
        Parameter -> update expression.

    References
    ----------
    .. [1] Robbins, H. & Monro, S. (1951): A stochastic approximation method.
           Annals of Mathematical Statistics 22(3):400-407.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> step = pytensor.function([], [], updates=sgd((w**2).sum(), [w], 0.25))
    >>> step(); w.get_value()
    []
    array([0.5, 0.5], dtype=float32)
    """
    return _sgd("sgd", loss_or_grads, params, learning_rate)


def _sgd(algo, loss_or_grads, params, learning_rate):
    hyper = Hyperparameters(algo, learning_rate=learning_rate)
    updates = OrderedDict()
    for _, param, grad in prepare(algo, loss_or_grads, params):
        (lr,) = hyper.as_dtype(param.dtype)
        updates[param] = param - lr * grad
    return updates


def _add_momentum(updates, named, momentum, algo, caller):
    """Rewrite ``updates`` in place with classical momentum on ``named``."""
    hyper = Hyperparameters(caller, momentum=momentum)
    for name, param in named:
        if param not in updates:
            raise ValueError(f"{caller}: parameter {name!r} has no update to add momentum to")
        (mu,) = hyper.as_dtype(param.dtype)
        velocity = param_state(name, param, algo, "velocity")
        x = mu * velocity + updates[param]
        updates[velocity] = x - param
        updates[param] = x
    return updates


def _add_nesterov(updates, named, momentum, algo, caller):
    """Rewrite ``updates`` in place with Nesterov momentum on ``named``."""
    hyper = Hyperparameters(caller, momentum=momentum)
    for name, param in named:
        if param not in updates:
            raise ValueError(f"{caller}: parameter {name!r} has no update to add momentum to")
        (mu,) = hyper.as_dtype(param.dtype)
        velocity = param_state(name, param, algo, "velocity")
        x = mu * velocity + updates[param] - param
        updates[velocity] = x
        updates[param] = mu * x + updates[param]
    return updates


def apply_momentum(updates, params=None, momentum=0.9):
    r"""Add classical momentum to an update dictionary (a modified copy).

    With :math:`u(p)` the update the dictionary gives parameter :math:`p`:

    .. math::

        v &\leftarrow \mu v + u(p) - p \\
        p &\leftarrow p + \mu v_{\text{old}} + u(p) - p = p + v

    with :math:`v` the velocity (state ``<param>/momentum_velocity``, zero at
    first) and :math:`\mu` the ``momentum``. As ``lasagne.updates``.

    Parameters
    ----------
    updates : OrderedDict
        Parameter -> update expression, e.g. from :func:`sgd` or ``rmsprop``.
    params : sequence or mapping of shared variables, optional
        The parameters to add momentum to (mapping keys name the velocity);
        default: every key of ``updates``.
    momentum : float or symbolic scalar
        The velocity decay :math:`\mu`.

    Returns
    -------
    OrderedDict
        A copy of ``updates`` with velocities added.

    Notes
    -----
    Momentum also enlarges the effective step by about :math:`1/(1-\mu)`;
    scale the learning rate by :math:`1-\mu` to compensate.

    References
    ----------
    .. [1] Polyak, B. T. (1964): Some methods of speeding up the convergence
           of iteration methods. USSR Computational Mathematics and
           Mathematical Physics 4(5):1-17.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = apply_momentum(sgd((w**2).sum(), [w], 0.1), momentum=0.5)
    >>> [v.name for v in updates]
    ['w', 'w/momentum_velocity']
    """
    updates = OrderedDict(updates)
    named = named_params("apply_momentum", list(updates) if params is None else params)
    return _add_momentum(updates, named, momentum, "momentum", "apply_momentum")


def apply_nesterov_momentum(updates, params=None, momentum=0.9):
    r"""Add Nesterov momentum to an update dictionary (a modified copy).

    With :math:`u(p)` the update the dictionary gives parameter :math:`p`:

    .. math::

        v &\leftarrow \mu v + u(p) - p \\
        p &\leftarrow p + \mu v + u(p) - p

    with :math:`v` the velocity (state ``<param>/nesterov_momentum_velocity``,
    zero at first; the second line uses the new :math:`v`) and :math:`\mu` the
    ``momentum``. This is the reformulation of Nesterov's accelerated gradient
    that needs the gradient at the current parameters only (Bengio et al.
    2013, eq. 7; Lasagne, pylearn2), not at the look-ahead point.

    Parameters
    ----------
    updates : OrderedDict
        Parameter -> update expression.
    params : sequence or mapping of shared variables, optional
        The parameters to add momentum to; default: every key of ``updates``.
    momentum : float or symbolic scalar
        The velocity decay :math:`\mu`.

    Returns
    -------
    OrderedDict
        A copy of ``updates`` with velocities added.

    References
    ----------
    .. [1] Nesterov, Y. (1983): A method for unconstrained convex minimization
           problem with the rate of convergence O(1/k^2). Doklady AN SSSR 269.
    .. [2] Bengio, Y., Boulanger-Lewandowski, N. & Pascanu, R. (2013):
           Advances in optimizing recurrent networks. ICASSP. arXiv:1212.0901.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = apply_nesterov_momentum(sgd((w**2).sum(), [w], 0.1))
    >>> [v.name for v in updates]
    ['w', 'w/nesterov_momentum_velocity']
    """
    updates = OrderedDict(updates)
    named = named_params("apply_nesterov_momentum", list(updates) if params is None else params)
    return _add_nesterov(updates, named, momentum, "nesterov_momentum", "apply_nesterov_momentum")


@register("momentum")
@common_parameters
def momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    r"""SGD with classical (heavy-ball) momentum.

    .. math::

        v &\leftarrow \mu v - \eta\, g \\
        p &\leftarrow p + v

    with :math:`p` a parameter, :math:`g` its gradient, :math:`v` its velocity
    (state ``<param>/momentum_velocity``, zero at first), :math:`\eta` the
    ``learning_rate`` and :math:`\mu` the ``momentum``. :func:`sgd` followed by
    :func:`apply_momentum`, as Lasagne. PyTorch's ``SGD(momentum=mu)`` keeps
    :math:`b = \mu b + g` and steps :math:`\eta b`: the same trajectory while
    :math:`\eta` is constant.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    momentum : float or symbolic scalar
        The velocity decay :math:`\mu`.

    Returns
    -------
    OrderedDict
        Parameter and velocity -> update expression.

    References
    ----------
    .. [1] Polyak, B. T. (1964): Some methods of speeding up the convergence
           of iteration methods. USSR Computational Mathematics and
           Mathematical Physics 4(5):1-17.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = momentum((w**2).sum(), {"hid.w": w}, 0.1, momentum=0.5)
    >>> [v.name for v in updates]
    ['w', 'hid.w/momentum_velocity']
    """
    named = named_params("momentum", params)
    updates = _sgd("momentum", loss_or_grads, params, learning_rate)
    return _add_momentum(updates, named, momentum, "momentum", "momentum")


@register("nesterov_momentum")
@common_parameters
def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    r"""SGD with Nesterov momentum, in Lasagne's current-gradient form.

    .. math::

        v &\leftarrow \mu v - \eta\, g \\
        p &\leftarrow p + \mu v - \eta\, g

    with :math:`p` a parameter, :math:`g` its gradient at :math:`p`, :math:`v`
    its velocity (state ``<param>/nesterov_momentum_velocity``, zero at first;
    the second line uses the new :math:`v`), :math:`\eta` the
    ``learning_rate`` and :math:`\mu` the ``momentum``. :func:`sgd` followed by
    :func:`apply_nesterov_momentum`, as Lasagne; the same trajectory as
    PyTorch's ``SGD(momentum=mu, nesterov=True)`` while :math:`\eta` is
    constant.

    Parameters
    ----------
    {common parameters}
    learning_rate : float or symbolic scalar
        The step size :math:`\eta`.
    momentum : float or symbolic scalar
        The velocity decay :math:`\mu`.

    Returns
    -------
    OrderedDict
        Parameter and velocity -> update expression.

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
    >>> updates = nesterov_momentum((w**2).sum(), [w], 0.1, momentum=0.5)
    >>> step = pytensor.function([], [], updates=updates)
    >>> step(); w.get_value()
    []
    array([0.7, 0.7], dtype=float32)
    """
    named = named_params("nesterov_momentum", params)
    updates = _sgd("nesterov_momentum", loss_or_grads, params, learning_rate)
    return _add_nesterov(updates, named, momentum, "nesterov_momentum", "nesterov_momentum")
