"""The plain view of a model that every regularizer reads."""

from collections import OrderedDict
from collections.abc import Mapping

from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors

from .errors import closest_hint

__all__ = ["Graph"]


def _named(argument, mapping, kind):
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"Graph: {argument} must be a mapping of name -> {kind}, got {type(mapping).__name__}"
        )
    checked = OrderedDict()
    for name, var in mapping.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"Graph: {argument} names must be non-empty strings, got {name!r}")
        base = SharedVariable if kind == "shared variable" else Variable
        if not isinstance(var, base):
            raise TypeError(
                f"Graph: {argument}[{name!r}] must be a PyTensor {kind}, got {type(var).__name__}"
            )
        checked[name] = var
    return checked


def _marked(argument, names, outputs):
    if isinstance(names, str):
        names = [names]
    names = list(names)
    for name in names:
        if name not in outputs:
            hint = closest_hint(name, outputs)
            raise ValueError(
                f"Graph: {argument} names {name!r}, which is not an output; "
                f"outputs are {', '.join(outputs)}{hint}"
            )
    return tuple(dict.fromkeys(names))


class Graph:
    """A model seen as named outputs and named parameters.

    Parameters
    ----------
    outputs : mapping of str -> Variable
        Named graph outputs in build order, e.g. ``'hid1:out'``. The last one
        is taken to be the model's output (``output_noise``,
        ``output_dropout``).
    params : mapping of str -> SharedVariable
        Named trainable parameters, e.g. ``'hid1.w'``.
    inputs : mapping of str -> Variable, optional
        Named symbolic inputs (what a compiled function is fed).
    hidden : sequence of str, optional
        Output names that are hidden layers (the defaults of ``hidden_*``
        penalties and ``contractive``).
    recurrent : sequence of str, optional
        Output names that are recurrent state sequences of shape
        ``(batch, time, units)`` (the defaults of ``recurrent_*`` penalties).
    updates : mapping, optional
        Extra updates the graph needs, such as the advance of a random
        generator.
    masks : mapping of str -> Variable, optional
        Output name -> a ``(batch, time)`` mask (1 at real steps, 0 at
        padding) for outputs of padded variable-length sequences. Penalties
        (``hidden_*``, ``recurrent_*``) and monitors then average over the
        real steps only; ``recurrent_*`` compare steps ``t`` and ``t - 1``
        only where both are real.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> x = pt.matrix("x")
    >>> w = pytensor.shared(np.ones((3, 2), "float32"), name="hid1.w")
    >>> h = pt.tanh(x @ w)
    >>> g = Graph({"in:out": x, "hid1:out": h}, {"hid1.w": w},
    ...           inputs={"x": x}, hidden=["hid1:out"])
    >>> g
    Graph(outputs=[in:out, hid1:out], params=[hid1.w], inputs=[x], hidden=[hid1:out], recurrent=[])
    """

    def __init__(
        self, outputs, params, inputs=None, hidden=(), recurrent=(), updates=None, masks=None
    ):
        self.outputs = _named("outputs", outputs, "variable")
        if not self.outputs:
            raise ValueError("Graph: outputs is empty; a graph needs at least one named output")
        self.params = _named("params", params, "shared variable")
        self.inputs = _named("inputs", inputs or {}, "variable")
        self.hidden = _marked("hidden", hidden, self.outputs)
        self.recurrent = _marked("recurrent", recurrent, self.outputs)
        self.updates = OrderedDict(updates or {})
        masks = _named("masks", masks or {}, "variable")
        _marked("masks", list(masks), self.outputs)
        for name, mask in masks.items():
            if mask.ndim != 2 or self.outputs[name].ndim < 2:
                raise ValueError(
                    f"Graph: masks[{name!r}] must be a (batch, time) mask of an output with a "
                    f"time axis; got a {mask.ndim}-D mask for a "
                    f"{self.outputs[name].ndim}-D output"
                )
        self.masks = masks
        # names of the outputs that were inputs before ``replace`` perturbed them
        self._input_names = None

    def __repr__(self):
        def names(seq):
            return "[" + ", ".join(seq) + "]"

        return (
            f"Graph(outputs={names(self.outputs)}, params={names(self.params)}, "
            f"inputs={names(self.inputs)}, hidden={names(self.hidden)}, "
            f"recurrent={names(self.recurrent)})"
        )

    @property
    def output(self):
        """Name of the model's output: the last named output."""
        return next(reversed(self.outputs))

    def mask(self, name):
        """The ``(batch, time)`` mask of output ``name``, or None when all its steps are real."""
        return self.masks.get(name)

    def input_outputs(self):
        """Names of the outputs that are themselves graph inputs (``in:out``).

        An output stays one after ``replace`` put noise or dropout on it, so
        ``input_noise`` and ``input_dropout`` can both apply.
        """
        if self._input_names is not None:
            return list(self._input_names)
        inputs = set(self.inputs.values())
        return [name for name, var in self.outputs.items() if var in inputs]

    def replace(self, replacements, updates=None):
        """Return a new Graph with some outputs replaced and the rest rebuilt.

        Every output that depends on a replaced one is recomputed from the
        replacement (PyTensor's ``graph_replace``), so noise put on
        ``'hid1:out'`` reaches ``'out:out'``. Parameters and inputs are
        shared with this graph; gradients and updates still apply to them.

        Parameters
        ----------
        replacements : mapping of str -> Variable
            Output name -> its new expression (which may use the old one).
            Replacements are made together: a replacement built from the old
            ``'hid2:out'`` does not see a new ``'hid1:out'``. To transform a
            chain of outputs, replace them one at a time in build order.
        updates : mapping, optional
            Updates to add to the new graph's (e.g. a random generator's).
            The graph's existing updates are rebuilt like its outputs, so a
            generator that an earlier replacement draws from stays in step
            with the outputs that use its draws.
        """
        mapping = OrderedDict()
        for name, new in replacements.items():
            old = self.outputs[name]
            mapping[old] = old.type.filter_variable(new, allow_convert=True)
        names = list(self.outputs)
        # existing updates (earlier regularizers' random generators) are rebuilt
        # with the outputs, so they advance past the draws the outputs now use
        carried = [var for var, new in self.updates.items() if isinstance(new, Variable)]
        rebuilt = graph_replace(
            [self.outputs[n] for n in names] + [self.updates[v] for v in carried],
            mapping,
            strict=True,
        )
        merged = OrderedDict(self.updates)
        merged.update(zip(carried, rebuilt[len(names) :], strict=True))
        merged.update(updates or {})
        graph = Graph(
            OrderedDict(zip(names, rebuilt[: len(names)], strict=True)),
            self.params,
            inputs=self.inputs,
            hidden=self.hidden,
            recurrent=self.recurrent,
            updates=merged,
            masks=self.masks,
        )
        graph._input_names = tuple(self.input_outputs())
        return graph

    def changes_from(self, original):
        """Map each of ``original``'s outputs that differ here to this graph's.

        Apply the result with ``graph_replace`` to move an expression built on
        ``original`` (a loss) onto this graph.
        """
        return OrderedDict(
            (var, self.outputs[name])
            for name, var in original.outputs.items()
            if name in self.outputs and self.outputs[name] is not var
        )

    def carry(self, expressions, original):
        """Move expressions built on graph ``original`` onto this graph.

        Each of ``original``'s outputs that the expressions depend on and that
        differs here is replaced by this graph's version (a loss on the clean
        graph becomes the same loss on the training graph).

        Parameters
        ----------
        expressions : Variable or list of Variable
        original : Graph

        Returns
        -------
        Variable or list of Variable, matching ``expressions``.
        """
        single = isinstance(expressions, Variable)
        exprs = [expressions] if single else list(expressions)
        used = set(ancestors(exprs))
        changes = OrderedDict(
            (old, new) for old, new in self.changes_from(original).items() if old in used
        )
        moved = graph_replace(exprs, changes, strict=True) if changes and exprs else exprs
        return moved[0] if single else list(moved)
