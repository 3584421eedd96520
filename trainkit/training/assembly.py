r"""A parsed training spec assembled into a regularized loss and an update dictionary.

This is where ``algo='adam', learning_rate=1e-3, weight_l2=1e-4,
hidden_dropout=0.2, max_norm=3, ...`` becomes a training step. ``net.train``,
the :class:`~trainkit.Trainer` and the command line all go through
:func:`assemble`:

1. The keywords are parsed once, by :func:`trainkit.training.spec.parse`
   (or a :class:`~trainkit.training.spec.TrainingSpec` is passed in).
2. Every regularizer's selection is checked against the graph (``ValueError``
   listing the names available).
3. Graph modifiers (noise, dropout) rewrite the graph into a training graph;
   the base loss is moved onto it.
4. The training loss is :math:`\mathcal{L} = \mathcal{L}_0 + \sum_r w_r
   \mathcal{L}_r` over regularizers that have a penalty.
5. Gradients are taken (``raw_gradients``) and :meth:`Assembly.apply` makes
   the second half of the step from them: gradient modifiers (clipping), the
   optimizer, then update modifiers (norm constraints). The split step
   (gradient accumulation, data parallel; :mod:`trainkit.training.step`)
   substitutes accumulated or all-reduced gradients for ``raw_gradients`` in
   that same graph, so both steps share the optimizer's state variables.
"""

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors

import regularizers
from regularizers.base import as_scalar
from regularizers.errors import InvalidArgument, UnknownArgument

from .. import optimizers
from .spec import DEFAULT_ALGO, DEFAULT_LEARNING_RATE, TrainingSpec, parse
from .state import is_rng

__all__ = ["Assembly", "assemble", "floatx_of", "DEFAULT_ALGO", "DEFAULT_LEARNING_RATE"]


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
    spec : TrainingSpec
        The parsed keywords (algorithm, hyperparameters, regularizers,
        trainer options).
    graph : regularizers.Graph
        The training graph (noise and dropout inserted).
    base_loss : scalar Variable
        The unregularized loss, moved onto the training graph.
    penalties : OrderedDict
        Regularizer label -> its weighted penalty, for monitoring.
    raw_gradients : OrderedDict
        Parameter name -> gradient of ``loss``, before clipping.
    gradients : OrderedDict
        Parameter name -> gradient after clipping.
    """

    loss: Variable
    updates: OrderedDict
    spec: TrainingSpec
    graph: regularizers.Graph
    base_loss: Variable
    penalties: OrderedDict = field(default_factory=OrderedDict)
    raw_gradients: OrderedDict = field(default_factory=OrderedDict)
    gradients: OrderedDict = field(default_factory=OrderedDict)

    @property
    def algo(self):
        return self.spec.algo

    @property
    def hyperparameters(self):
        return self.spec.hyperparameters

    @property
    def regularizers(self):
        return list(self.spec.regularizers)

    @property
    def graph_updates(self):
        """The training graph's own updates (noise and dropout generators)."""
        return OrderedDict(self.graph.updates)

    def apply(self, gradients, hyperparameters=None):
        """The second half of a step: clip ``gradients``, run the optimizer, constrain.

        Parameters
        ----------
        gradients : mapping of str -> Variable
            One gradient expression per parameter name (any expressions:
            this step's gradients, accumulated or all-reduced ones).
        hyperparameters : dict, optional
            Replaces the spec's (e.g. a shared learning-rate variable).

        Returns
        -------
        (OrderedDict, OrderedDict)
            The clipped gradients by parameter name, and the updates of the
            parameters and the optimizer state (not the graph's generators).
        """
        params = self.graph.params
        grads = OrderedDict((name, gradients[name]) for name in params)
        for reg in self.spec.regularizers:
            grads = reg.modify_gradients(self.graph, grads)
        hyper = dict(self.spec.hyperparameters if hyperparameters is None else hyperparameters)
        updates = optimizers.build(self.spec.algo, list(grads.values()), params, **hyper)
        for reg in self.spec.regularizers:
            updates = reg.modify_updates(self.graph, updates)
        return grads, OrderedDict(updates)


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


def assemble(graph, loss, algo=None, *, spec=None, hyperparameters=None, **kwargs):
    """Turn a graph, a base loss and keyword arguments into a training step.

    Parameters
    ----------
    graph : regularizers.Graph
        The model (its clean, prediction-time graph).
    loss : scalar Variable
        The base loss, built from ``graph``'s outputs.
    algo : str, optional
        Optimizer name (see ``trainkit.optimizers.names()``).
    spec : TrainingSpec, optional
        Keywords already parsed (then give no ``algo`` or keywords).
    hyperparameters : dict, optional
        Replaces the spec's hyperparameters when building the updates (the
        trainer passes its shared learning-rate variable).
    **kwargs
        Optimizer hyperparameters (``learning_rate=...``), regularizers
        (``weight_l2=...``, ``hidden_dropout=...``, ``max_norm=...``) and
        trainer options, parsed by :func:`trainkit.training.spec.parse`.

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
    if spec is None:
        spec = parse(algo, **kwargs)
    elif algo is not None or kwargs:
        given = "algo" if algo is not None else next(iter(kwargs))
        raise UnknownArgument(given, "give keywords or a parsed spec, not both", None)
    if not isinstance(graph, regularizers.Graph):
        raise TypeError(f"assemble: graph must be a regularizers.Graph, got {type(graph).__name__}")
    if not isinstance(loss, Variable) or loss.ndim != 0:
        raise TypeError(f"assemble: loss must be a scalar PyTensor variable, got {loss!r}")
    for reg in spec.regularizers:
        reg.targets(graph)
    if not graph.params:
        raise ValueError("assemble: the graph has no parameters to train")
    with floatx_of(graph.params.values()):
        return _assemble(graph, loss, spec, hyperparameters)


def penalty_terms(regs, graph):
    """Label -> weighted penalty for each regularizer that has one, on ``graph``."""
    penalties = OrderedDict()
    for reg in regs:
        penalty = reg.loss(graph)
        if penalty is None:
            continue
        penalties[_label(reg, penalties)] = as_scalar(reg.weight, penalty.dtype) * penalty
    return penalties


def total_loss(base, penalties):
    """The base loss plus the weighted penalties, in the base loss's dtype."""
    total = base
    for term in penalties.values():
        total = total + pt.cast(term, total.dtype)
    return total


def _assemble(graph, loss, spec, hyperparameters):
    params = graph.params
    regs = spec.regularizers

    # a model whose training graph differs (batch normalisation with batch statistics)
    training = getattr(graph, "training", None)
    train = graph if training is None else training
    for reg in regs:
        train = reg.modify_graph(train)
    base_loss = train.carry(loss, graph)
    penalties = penalty_terms(regs, train)
    total = total_loss(base_loss, penalties)

    connected = set(ancestors([total]))
    unused = [name for name, p in params.items() if p not in connected]
    if unused:
        raise ValueError(
            f"assemble: the loss does not depend on parameter(s) {', '.join(unused)}; "
            f"leave them out of the graph's params"
        )
    generators = {v.name: v for v in train.updates if is_rng(v)}
    for reg in regs:
        rng = generators.get(getattr(reg, "rng_name", None))
        if rng is not None and rng not in connected:
            raise _unreached(reg, graph, loss)
    raw = OrderedDict(zip(params, pytensor.grad(total, list(params.values())), strict=True))
    assembly = Assembly(
        loss=total,
        updates=OrderedDict(),
        spec=spec,
        graph=train,
        base_loss=base_loss,
        penalties=penalties,
        raw_gradients=raw,
    )
    grads, updates = assembly.apply(raw, hyperparameters)
    for var, new in train.updates.items():
        if var in updates:
            raise ValueError(f"assemble: {var.name or var} is updated twice")
        updates[var] = new
    assembly.gradients = grads
    assembly.updates = updates
    return assembly


def _unreached(reg, graph, loss):
    """The error for a noise or dropout whose outputs the loss does not read: why, and
    which outputs of the same layers the loss reads instead."""
    targets = list(reg.targets(graph))
    read = set(ancestors([loss]))
    layers = {t.split(":")[0] for t in targets}
    instead = [
        name
        for name, var in graph.outputs.items()
        if name.split(":")[0] in layers and name not in targets and var in read
    ]
    label = reg.label or reg.name
    problem = (
        f"its noise on {', '.join(targets)} does not reach the loss, so it would change nothing"
    )
    if instead:
        example = instead[-1]
        if example.endswith(":last"):
            why = "the layer has return_sequences=false: the next layer reads its last step"
        elif example.endswith(":pre"):
            why = "the loss is computed from the pre-activation, as xent is"
        else:
            why = "the next layer reads another output of it"
        problem += (
            f"; the loss reads {example} instead ({why}); select that, e.g. "
            f"{reg.name}={{'weight': {reg.weight!r}, 'pattern': {example!r}}}"
        )
    else:
        problem += "; select outputs the loss depends on"
    return InvalidArgument(label, problem, reg.weight)


def _label(reg, taken):
    label = reg.name
    if reg.pattern is not None and reg.name in taken:
        label = f"{reg.name}[{','.join(reg.pattern.globs)}]"
    return label
