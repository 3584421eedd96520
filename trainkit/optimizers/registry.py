"""The algorithm registry: one plain dict and an explicit decorator.

An algorithm is a function ``f(loss_or_grads, params, **hyperparameters)``
returning an ``OrderedDict`` of updates. Its hyperparameters, their defaults
and its one-line description are read from its signature and docstring, so
registering it is all it takes to make it buildable by name, listed by
:func:`names` and covered by the table-driven tests.

>>> from trainkit import optimizers
>>> "adam" in optimizers.names()
True
>>> dict(optimizers.hyperparameters("adam"))
{'learning_rate': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'epsilon': 1e-08}
"""

import inspect
from collections import OrderedDict

from regularizers.errors import closest_hint, listing
from regularizers.registries import Registry

__all__ = ["build", "describe", "hyperparameters", "lookup", "names", "register", "schedulable"]

_ALGORITHMS = Registry("algorithm", "algo")
_FIXED_RATE = set()  # algorithms that read learning_rate once
_LEADING = ("loss_or_grads", "params")


def register(name, schedulable=True):
    """Decorator: register an update rule under ``name``.

    The function must take ``(loss_or_grads, params, ...)``; everything after
    ``params`` is a hyperparameter. Registering a name twice is an error.
    ``schedulable=False`` marks a rule that reads ``learning_rate`` once, when
    the updates are built (``rprop``'s initial step), so a learning-rate
    schedule would have no effect on it.
    """

    def decorate(function):
        leading = tuple(inspect.signature(function).parameters)[:2]
        if leading != _LEADING:
            raise TypeError(
                f"register: {name} must take (loss_or_grads, params, ...) first, "
                f"got ({', '.join(leading)}, ...)"
            )
        _ALGORITHMS.add(name, function)
        if not schedulable:
            _FIXED_RATE.add(name)
        return function

    return decorate


def names():
    """Sorted names of the registered algorithms."""
    return _ALGORITHMS.names()


def schedulable(algo):
    """Whether a schedule can change ``algo``'s learning rate after building.

    >>> schedulable("adam"), schedulable("rprop")
    (True, False)
    """
    lookup(algo)
    return algo not in _FIXED_RATE


def lookup(algo):
    """The function registered as ``algo``; InvalidArgument (a ValueError) naming the closest."""
    return _ALGORITHMS.lookup(algo)


def hyperparameters(algo):
    """``OrderedDict`` of hyperparameter name -> default for ``algo``.

    Required hyperparameters map to :data:`inspect.Parameter.empty`.
    """
    parameters = list(inspect.signature(lookup(algo)).parameters.values())[2:]
    return OrderedDict((p.name, p.default) for p in parameters)


def describe(algo):
    """The first line of ``algo``'s docstring."""
    doc = inspect.getdoc(lookup(algo)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def build(algo, loss_or_grads, params, **hyper):
    """Updates for ``params`` by the algorithm named ``algo``.

    Parameters
    ----------
    algo : str
        A name from :func:`names`.
    loss_or_grads : scalar variable or list of variables
        A scalar loss, or one gradient per parameter.
    params : sequence or mapping of shared variables
        The parameters; mapping keys (else ``param.name``) name the state.
    **hyper
        The algorithm's hyperparameters (see :func:`hyperparameters`).

    Returns
    -------
    OrderedDict
        Shared variable -> update expression, for parameters and state.

    Raises
    ------
    ValueError
        For an unknown ``algo``.
    TypeError
        For an unknown hyperparameter or a missing required one.

    Examples
    --------
    >>> import numpy as np, pytensor
    >>> from trainkit.optimizers import build
    >>> w = pytensor.shared(np.ones(2, dtype="float32"), name="w")
    >>> updates = build("sgd", (w**2).sum(), [w], learning_rate=0.25)
    >>> pytensor.function([], [], updates=updates)()
    []
    >>> w.get_value()
    array([0.5, 0.5], dtype=float32)
    """
    function = lookup(algo)
    allowed = hyperparameters(algo)
    for key in hyper:
        if key not in allowed:
            hint = closest_hint(key, allowed)
            raise TypeError(
                f"{algo}: unknown hyperparameter {key!r}; {algo} takes {listing(allowed)}{hint}"
            )
    missing = [k for k, default in allowed.items() if default is inspect.Parameter.empty]
    missing = [k for k in missing if k not in hyper]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise TypeError(f"{algo}: {' and '.join(missing)} {verb} required")
    return function(loss_or_grads, params, **hyper)
