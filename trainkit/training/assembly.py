r"""Keyword arguments assembled into a regularized loss and an update dictionary.

This is the one place where ``algo='adam', learning_rate=1e-3,
weight_l2=1e-4, hidden_dropout=0.2, max_norm=3, ...`` becomes a training
step. ``net.train``, the :class:`~trainkit.Trainer` and the command line all
go through :func:`assemble`:

1. :func:`split_kwargs` sorts the keywords into optimizer hyperparameters,
   regularizers and trainer options, and rejects the rest (``TypeError``
   naming the closest valid keywords), before any graph is touched.
2. Every regularizer's selection is checked against the graph (``ValueError``
   listing the names available).
3. Graph modifiers (noise, dropout) rewrite the graph into a training graph;
   the base loss is moved onto it.
4. The training loss is :math:`\mathcal{L} = \mathcal{L}_0 + \sum_r w_r
   \mathcal{L}_r` over regularizers that have a penalty.
5. Gradients are taken, then passed through gradient modifiers (clipping).
6. The optimizer makes updates, which update modifiers (norm constraints)
   rewrite; the training graph's own updates (random generators) are added.
"""

import contextlib
import inspect
from collections import OrderedDict
from dataclasses import dataclass, field

import pytensor
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomGeneratorType

import regularizers
from regularizers.base import as_scalar
from regularizers.errors import closest_hint, listing

from .. import optimizers
from .options import TRAINER_OPTIONS

__all__ = [
    "Assembly",
    "assemble",
    "split_kwargs",
    "floatx_of",
    "DEFAULT_ALGO",
    "DEFAULT_LEARNING_RATE",
]

#: the algorithm used when none is named (theanets' default)
DEFAULT_ALGO = "rmsprop"
#: the learning rate used when none is given, for every algorithm that has one
DEFAULT_LEARNING_RATE = 1e-3


@dataclass
class Assembly:
    """What :func:`assemble` returns.

    Attributes
    ----------
    loss : scalar Variable
        The regularized training loss, on the training graph.
    updates : OrderedDict
        Shared variable -> new value: parameters, optimizer state, random
        generators.
    regularizers : list of Regularizer
        The regularizers built from the keywords, in keyword order.
    trainer_kwargs : dict
        The keywords left for the trainer.
    graph : regularizers.Graph
        The training graph (noise and dropout inserted).
    base_loss : scalar Variable
        The unregularized loss, moved onto the training graph.
    penalties : OrderedDict
        Regularizer label -> its weighted penalty, for monitoring.
    gradients : OrderedDict
        Parameter name -> gradient after clipping.
    algo : str
        The optimizer's name.
    hyperparameters : dict
        The hyperparameters given to the optimizer (defaults filled in).
    """

    loss: Variable
    updates: OrderedDict
    regularizers: list
    trainer_kwargs: dict
    graph: regularizers.Graph
    base_loss: Variable
    penalties: OrderedDict = field(default_factory=OrderedDict)
    gradients: OrderedDict = field(default_factory=OrderedDict)
    algo: str = DEFAULT_ALGO
    hyperparameters: dict = field(default_factory=dict)


def floatx_of(params):
    """Context in which ``floatX`` is the parameters' dtype, when they share one.

    Gradients and rewrites create constants in ``floatX``; under PyTensor's
    default ``floatX=float64`` a float32 model would pick up float64
    intermediates (slower, and a type error inside a scan's gradient on the
    JAX backend). Assembling and compiling a float32 model under
    ``floatX=float32`` keeps every intermediate float32.
    """
    dtypes = {p.dtype for p in params}
    if len(dtypes) == 1 and next(iter(dtypes)) in ("float16", "float32", "float64"):
        return pytensor.config.change_flags(floatX=next(iter(dtypes)))
    return contextlib.nullcontext()


def _owners(key):
    """Algorithms that have a hyperparameter called ``key``."""
    return [a for a in optimizers.names() if key in optimizers.hyperparameters(a)]


def split_kwargs(algo=DEFAULT_ALGO, trainer_options=TRAINER_OPTIONS, **kwargs):
    """Sort keywords into hyperparameters, regularizers and trainer options.

    Parameters
    ----------
    algo : str
        The optimizer's registered name.
    trainer_options : collection of str
        The keywords the calling trainer accepts.
    **kwargs
        Everything else the user gave.

    Returns
    -------
    hyper : dict
        Hyperparameters for ``algo``, with ``learning_rate`` defaulting to
        :data:`DEFAULT_LEARNING_RATE` where ``algo`` has one.
    regs : list of Regularizer
        Built with :func:`regularizers.from_kwargs`.
    trainer_kwargs : dict
        Keywords named in ``trainer_options``.

    Raises
    ------
    ValueError
        For an unknown ``algo``.
    TypeError
        For a keyword that none of them claims, naming the closest valid ones.

    Examples
    --------
    >>> hyper, regs, rest = split_kwargs("adam", weight_l2=1e-4, batch_size=32)
    >>> hyper, regs, rest
    ({'learning_rate': 0.001}, [weight_l2(weight=0.0001, pattern=None)], {'batch_size': 32})
    >>> split_kwargs("adam", weight_l22=1e-4)
    Traceback (most recent call last):
    ...
    TypeError: weight_l22: unknown keyword argument; it is not a hyperparameter of adam, a regularizer or a trainer option (closest: weight_l2, weight_l1)
    """
    allowed = optimizers.hyperparameters(algo)
    reg_names = set(regularizers.names())
    trainer_options = set(trainer_options)
    hyper, reg_kwargs, trainer_kwargs = {}, {}, {}
    for key, value in kwargs.items():
        if key in allowed:
            hyper[key] = value
        elif key in reg_names:
            reg_kwargs[key] = value
        elif key in trainer_options:
            trainer_kwargs[key] = value
        else:
            owners = _owners(key)
            if owners:
                raise TypeError(
                    f"{key}: not a hyperparameter of {algo} (it belongs to "
                    f"{listing(owners)}); {algo} takes {listing(allowed) or 'none'}"
                )
            valid = [*allowed, *sorted(reg_names), *sorted(trainer_options)]
            hint = closest_hint(key, valid)
            raise TypeError(
                f"{key}: unknown keyword argument; it is not a hyperparameter of {algo}, "
                f"a regularizer or a trainer option{hint}"
            )
    if "learning_rate" in allowed and "learning_rate" not in hyper:
        hyper["learning_rate"] = DEFAULT_LEARNING_RATE
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in hyper]
    if missing:
        raise TypeError(f"{algo}: {' and '.join(missing)} is required")
    return hyper, regularizers.from_kwargs(**reg_kwargs), trainer_kwargs


def assemble(graph, loss, algo=DEFAULT_ALGO, *, trainer_options=TRAINER_OPTIONS, **kwargs):
    """Turn a graph, a base loss and keyword arguments into a training step.

    Parameters
    ----------
    graph : regularizers.Graph
        The model (its clean, prediction-time graph).
    loss : scalar Variable
        The base loss, built from ``graph``'s outputs.
    algo : str
        Optimizer name (see ``trainkit.optimizers.names()``).
    trainer_options : collection of str
        Keywords to pass through for the trainer instead of rejecting.
    **kwargs
        Optimizer hyperparameters (``learning_rate=...``), regularizers
        (``weight_l2=...``, ``hidden_dropout=...``, ``max_norm=...``) and
        trainer options.

    Returns
    -------
    Assembly

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt, regularizers
    >>> x = pt.matrix("x")
    >>> w = pytensor.shared(np.full((2, 1), 0.5, "float32"), name="out.w")
    >>> g = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    >>> a = assemble(g, pt.mean((x @ w - 1) ** 2), algo="sgd", learning_rate=0.1, weight_l2=0.5)
    >>> step = pytensor.function([x], a.loss, updates=a.updates)
    >>> float(step(np.ones((4, 2), "float32")))     # 0 + 0.5 * mean(w ** 2)
    0.125
    >>> w.get_value().ravel()                        # w - 0.1 * (2 * 0 + 0.5 * 2 w / 2)
    array([0.475, 0.475], dtype=float32)
    """
    if not isinstance(graph, regularizers.Graph):
        raise TypeError(f"assemble: graph must be a regularizers.Graph, got {type(graph).__name__}")
    if not isinstance(loss, Variable) or loss.ndim != 0:
        raise TypeError(f"assemble: loss must be a scalar PyTensor variable, got {loss!r}")
    hyper, regs, trainer_kwargs = split_kwargs(algo, trainer_options, **kwargs)
    for reg in regs:
        reg.targets(graph)
    if not graph.params:
        raise ValueError("assemble: the graph has no parameters to train")
    with floatx_of(graph.params.values()):
        return _assemble(graph, loss, algo, hyper, regs, trainer_kwargs)


def _assemble(graph, loss, algo, hyper, regs, trainer_kwargs):
    params = graph.params

    train = graph
    for reg in regs:
        train = reg.modify_graph(train)
    base_loss = train.carry(loss, graph)

    total = base_loss
    penalties = OrderedDict()
    for reg in regs:
        penalty = reg.loss(train)
        if penalty is None:
            continue
        term = as_scalar(reg.weight, penalty.dtype) * penalty
        penalties[_label(reg, penalties)] = term
        total = total + pytensor.tensor.cast(term, total.dtype)

    connected = set(ancestors([total]))
    unused = [name for name, p in params.items() if p not in connected]
    if unused:
        raise ValueError(
            f"assemble: the loss does not depend on parameter(s) {', '.join(unused)}; "
            f"leave them out of the graph's params"
        )
    generators = {v.name: v for v in train.updates if isinstance(v.type, RandomGeneratorType)}
    for reg in regs:
        rng = generators.get(getattr(reg, "rng_name", None))
        if rng is not None and rng not in connected:
            raise ValueError(
                f"{reg.label or reg.name}: its noise on {', '.join(reg.targets(graph))} does not "
                f"reach the loss, so it would change nothing (a loss computed from a "
                f"pre-activation, like xent, does not read the output after its activation); "
                f"select outputs the loss depends on"
            )
    grads = OrderedDict(zip(params, pytensor.grad(total, list(params.values())), strict=True))
    for reg in regs:
        grads = reg.modify_gradients(train, grads)

    updates = optimizers.build(algo, list(grads.values()), params, **hyper)
    for reg in regs:
        updates = reg.modify_updates(train, updates)
    for var, new in train.updates.items():
        if var in updates:
            raise ValueError(f"assemble: {var.name or var} is updated twice")
        updates[var] = new
    return Assembly(
        loss=total,
        updates=OrderedDict(updates),
        regularizers=regs,
        trainer_kwargs=trainer_kwargs,
        graph=train,
        base_loss=base_loss,
        penalties=penalties,
        gradients=grads,
        algo=algo,
        hyperparameters=hyper,
    )


def _label(reg, taken):
    label = reg.name
    if reg.pattern is not None and reg.name in taken:
        label = f"{reg.name}[{','.join(reg.pattern.globs)}]"
    return label
