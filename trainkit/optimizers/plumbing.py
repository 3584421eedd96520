"""Plumbing shared by every update rule.

Four small jobs, done the same way for every algorithm:

- name the parameters (mapping keys, else ``param.name``, else ``param{i}``);
- get one gradient per parameter from a loss or a list of gradients
  (Lasagne's ``get_or_compute_grads`` semantics);
- turn hyperparameters (Python numbers, numpy scalars or symbolic scalars)
  into scalars of each parameter's dtype, so a float32 parameter gets a
  float32 update whatever ``floatX`` is;
- create optimizer state as named shared variables:
  ``<param name>/<algo>_<slot>`` per parameter, ``<algo>/<slot>`` for global
  state such as the step counter ``<algo>/t``.
"""

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable

__all__ = [
    "common_parameters",
    "Hyperparameters",
    "constant",
    "gradients",
    "global_state",
    "named_params",
    "param_state",
    "prepare",
    "scalar_value",
    "state_dtype",
    "step_counter",
]


def named_params(algo, params):
    """Return ``params`` as a list of ``(name, shared variable)`` pairs.

    ``params`` is a sequence of shared variables or a mapping from name to
    shared variable. Names are the mapping keys, else ``param.name``, else
    ``param{i}`` (``i`` the position). Names that occur more than once get the
    position appended (``W[0]``, ``W[3]``) so state names stay unique.
    """
    if isinstance(params, Variable) or not isinstance(params, Iterable | Mapping):
        raise TypeError(
            f"{algo}: params must be a sequence or a mapping of shared variables, "
            f"got {type(params).__name__}; wrap a single parameter in a list"
        )
    if isinstance(params, Mapping):
        items = [(str(key), param) for key, param in params.items()]
    else:
        items = [(getattr(p, "name", None) or f"param{i}", p) for i, p in enumerate(params)]
    for name, param in items:
        if not isinstance(param, SharedVariable):
            raise ValueError(
                f"{algo}: parameter {name!r} is a {type(param).__name__}; params must be "
                "shared variables, which an update can change"
            )
    seen = {}
    for name, param in items:
        if param in seen:
            raise ValueError(
                f"{algo}: parameter {name!r} is listed twice (also as {seen[param]!r}); "
                "list each parameter once"
            )
        seen[param] = name
    counts = Counter(name for name, _ in items)
    return [
        (f"{name}[{i}]" if counts[name] > 1 else name, param)
        for i, (name, param) in enumerate(items)
    ]


def gradients(algo, loss_or_grads, params):
    """One gradient per parameter, each in its parameter's dtype.

    ``loss_or_grads`` is a scalar loss (differentiated with
    :func:`pytensor.grad`) or a list of gradients aligned with ``params``.
    """
    if isinstance(loss_or_grads, list | tuple):
        if len(loss_or_grads) != len(params):
            raise ValueError(
                f"{algo}: got {len(loss_or_grads)} gradient expressions for "
                f"{len(params)} parameters; give one gradient per parameter, in order"
            )
        grads = [pt.as_tensor_variable(g) for g in loss_or_grads]
    else:
        grads = pytensor.grad(loss_or_grads, list(params))
    return [
        g if g.dtype == p.dtype else pt.cast(g, p.dtype) for g, p in zip(grads, params, strict=True)
    ]


def prepare(algo, loss_or_grads, params):
    """``(name, param, grad)`` triples for an update rule to loop over."""
    named = named_params(algo, params)
    grads = gradients(algo, loss_or_grads, [p for _, p in named])
    return [(name, param, grad) for (name, param), grad in zip(named, grads, strict=True)]


class Hyperparameters:
    """Validated scalar hyperparameters, cast on demand to a dtype.

    >>> hyper = Hyperparameters("adam", learning_rate=0.1, beta1=0.9)
    >>> lr, b1 = hyper.as_dtype("float32")
    >>> lr.dtype, b1.dtype
    ('float32', 'float32')
    """

    def __init__(self, algo, **values):
        self.algo = algo
        self.values = {}
        for name, value in values.items():
            if isinstance(value, Variable):
                if value.ndim != 0:
                    raise TypeError(
                        f"{algo}: {name} must be a scalar, got a {value.ndim}-d variable"
                    )
            elif np.ndim(value) != 0 or not np.issubdtype(np.asarray(value).dtype, np.number):
                raise TypeError(
                    f"{algo}: {name} must be a number or a symbolic scalar, got {value!r}"
                )
            self.values[name] = value
        self._cache = {}

    def as_dtype(self, dtype):
        """The hyperparameters, in the order given, as scalars of ``dtype``."""
        if dtype not in self._cache:
            self._cache[dtype] = tuple(_scalar(v, dtype) for v in self.values.values())
        return self._cache[dtype]


def _scalar(value, dtype):
    if isinstance(value, Variable):
        return value if value.dtype == dtype else pt.cast(value, dtype)
    return constant(value, dtype)


def constant(value, dtype):
    """A scalar constant of ``dtype`` (a bare Python float would be floatX)."""
    return pt.constant(np.asarray(value, dtype=dtype))


def scalar_value(algo, name, value):
    """The current numeric value of a number, constant or shared scalar."""
    if isinstance(value, SharedVariable):
        return value.get_value()
    if isinstance(value, Constant):
        return value.data
    if isinstance(value, Variable):
        raise TypeError(
            f"{algo}: {name} is read once, when the updates are built, so it must be a "
            f"number or a shared variable, got {value!r}"
        )
    return value


def state_dtype(params):
    """The widest dtype among ``params``: the dtype of global float state."""
    return str(np.result_type(*[p.dtype for p in params]))


def param_state(name, param, algo, slot, init=0):
    """A shared variable shaped and typed like ``param``, named ``name/algo_slot``."""
    value = param.get_value(borrow=True)
    return pytensor.shared(
        np.full(value.shape, init, dtype=value.dtype),
        name=f"{name}/{algo}_{slot}",
        shape=param.type.shape,
    )


def global_state(algo, slot, value):
    """A shared variable for state shared by all parameters, named ``algo/slot``."""
    return pytensor.shared(value, name=f"{algo}/{slot}")


def step_counter(algo):
    """The step counter ``algo/t``: an int64 scalar starting at 0.

    Integer, so it adds no float64 to the graph; rules cast it to each
    parameter's dtype before using it in bias corrections.
    """
    return global_state(algo, "t", np.int64(0))


#: the two arguments every update rule takes, documented once
COMMON_PARAMETERS = """    loss_or_grads : scalar variable or list of variables
        A scalar loss, or one gradient per parameter.
    params : sequence or mapping of shared variables
        The parameters to update; mapping keys (else ``param.name``) name the
        optimizer state (``<param>/<algo>_<slot>``).
"""


def common_parameters(function):
    """Decorator: put :data:`COMMON_PARAMETERS` where a docstring says ``{common parameters}``."""
    marker = "    {common parameters}\n"
    if function.__doc__ is None or marker not in function.__doc__:
        raise ValueError(f"common_parameters: {function.__name__}'s docstring has no {marker!r}")
    function.__doc__ = function.__doc__.replace(marker, COMMON_PARAMETERS)
    return function
