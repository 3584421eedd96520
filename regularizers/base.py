"""The Regularizer base class: weight, pattern, targets and the four hooks."""

import inspect
import numbers

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .patterns import Pattern

__all__ = ["Regularizer", "as_scalar", "mean_of"]


def as_scalar(value, dtype):
    """``value`` (number or symbolic scalar) as a scalar of ``dtype``.

    Numbers become constants of ``dtype`` so a float32 graph stays float32
    whatever ``floatX`` is; symbolic scalars (shared variables that a schedule
    changes) are cast.
    """
    if isinstance(value, Variable):
        return value if value.dtype == dtype else pt.cast(value, dtype)
    return pt.constant(np.asarray(value, dtype=dtype))


def mean_of(terms):
    """The mean of a non-empty list of scalar expressions."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total / len(terms) if len(terms) > 1 else total


class Regularizer:
    """Something that changes how a graph is trained, selected by pattern.

    A regularizer has a ``weight`` (its one main number: a penalty's
    coefficient, a noise level, a dropout rate, a norm limit) and a
    ``pattern`` (which outputs or parameters it acts on; ``None`` means the
    regularizer's default, e.g. the graph's hidden outputs). It implements any
    of four hooks, which the assembly step calls in this order:

    1. ``modify_graph(graph) -> Graph``: replace outputs (noise, dropout);
       training graphs only.
    2. ``loss(graph) -> scalar`` or ``None``: the *unweighted* penalty; the
       caller adds ``weight * loss``.
    3. ``modify_gradients(graph, grads) -> grads``: ``grads`` maps parameter
       names to gradient expressions (clipping).
    4. ``modify_updates(graph, updates) -> updates``: ``updates`` maps shared
       variables to their new values (norm constraints).

    Subclasses set ``kind`` (``'output'``, ``'parameter'`` or ``'input'``:
    what the pattern is matched against), store each constructor argument
    under its own name (so ``config()`` round-trips), and define
    ``default_targets``.
    """

    #: registry name, set by ``@register``
    name = None
    #: what ``pattern`` is matched against: 'output' or 'parameter'
    kind = "output"
    #: allowed weights: (low, high, low_inclusive, high_inclusive)
    weight_range = (0.0, None, True, False)
    #: name used in messages; ``build`` sets it to the name the user gave
    label = None

    def __init__(self, weight, pattern=None):
        self.weight = self._check_weight(weight)
        self.pattern = None if pattern is None else Pattern(pattern, owner=self.label or self.name)

    # -- validation -------------------------------------------------------

    def _check_weight(self, weight):
        label = self.label or self.name
        if isinstance(weight, Variable):
            if weight.ndim != 0:
                raise TypeError(f"{label}: weight must be a scalar, got a {weight.ndim}-d variable")
            return weight
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise TypeError(
                f"{label}: weight must be a number or a symbolic scalar, got {weight!r}"
            )
        low, high, low_inc, high_inc = self.weight_range
        ok = np.isfinite(weight)
        ok = ok and (weight >= low if low_inc else weight > low)
        if high is not None:
            ok = ok and (weight <= high if high_inc else weight < high)
        if not ok:
            left = "[" if low_inc else "("
            right = "]" if high_inc else ")"
            upper = "inf" if high is None else f"{high:g}"
            raise ValueError(
                f"{label}: weight must be a number in {left}{low:g}, {upper}{right}, got {weight!r}"
            )
        return float(weight)

    # -- configuration -----------------------------------------------------

    def config(self):
        """Constructor arguments that rebuild this regularizer.

        ``build(reg.name, **reg.config())`` makes an equivalent one.
        """
        params = inspect.signature(type(self).__init__).parameters
        config = {}
        for arg in list(params)[1:]:
            value = getattr(self, arg)
            config[arg] = value.spec if isinstance(value, Pattern) else value
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{self.name}({args})"

    # -- selection ---------------------------------------------------------

    def candidates(self, graph):
        """Every name of this regularizer's ``kind`` in ``graph``."""
        if self.kind == "parameter":
            return list(graph.params)
        if self.kind == "input":
            return list(graph.inputs)
        return list(graph.outputs)

    def default_targets(self, graph):
        """Names selected when no pattern is given (subclasses define it)."""
        raise TypeError(f"{self.label or self.name}: no default selection; give a pattern")

    def targets(self, graph):
        """Names this regularizer acts on in ``graph``, in graph order.

        An explicit pattern is matched against every name of the kind; with
        no pattern, the regularizer's default applies. Either way, selecting
        nothing is a ``ValueError``.
        """
        if self.pattern is not None:
            return self.pattern.select(self.candidates(graph), self.kind)
        names = self.default_targets(graph)
        if not names:
            available = ", ".join(self.candidates(graph)) or "none"
            raise ValueError(
                f"{self.label or self.name}: {self.default_description} in this graph; "
                f"give a pattern ({self.kind}s are {available})"
            )
        return names

    #: what the default selects, for the message when it selects nothing
    default_description = "the default selects nothing"

    # -- hooks (identity unless a subclass overrides) ------------------------

    def modify_graph(self, graph):
        """Return ``graph`` with outputs replaced; the base class changes nothing."""
        return graph

    def loss(self, graph):
        """Unweighted scalar penalty on ``graph``, or ``None`` for none."""
        return None

    def modify_gradients(self, graph, grads):
        """Return gradients (name -> expression); the base class changes nothing."""
        return grads

    def modify_updates(self, graph, updates):
        """Return updates (shared -> expression); the base class changes nothing."""
        return updates
