"""Prediction with a network: ``predict`` in batches, optionally with noise or dropout.

:class:`Prediction` is a base of :class:`~trainkit.models.network.Network`:
it checks ``x`` and ``lengths`` against the network's specs, compiles one
output function per setting of the graph regularizers (and keeps it, so its
random generator keeps advancing across calls), and computes the output
``batch_size`` examples at a time. It also weighs the padded steps of
sequence outputs by 0 for the kinds' ``score``.
"""

import numpy as np
import pytensor

import regularizers
from regularizers.base import Regularizer
from regularizers.errors import InvalidArgument, closest_hint

from ..backend import QuietFirstCall, prepare, quiet, resolve
from ..data.arrays import check_arrays
from ..layers.shapes import steps

__all__ = ["Prediction"]


class Prediction:
    """``predict`` of a :class:`~trainkit.models.network.Network`, and what it rests on.

    Uses the network's ``graph``, ``x``, ``lengths``, ``dtype``, ``mode``,
    ``output_name``, ``output_ndim``, ``static_time``, input and lengths
    specs, and its cache of compiled functions (``_functions``).
    """

    def _check_x(self, x, argument="x"):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{argument}: expected a numpy array, got {type(x).__name__}")
        spec = self._input_spec()
        check_arrays([x], [spec], argument=argument)
        if self.is_sequence:
            self.structure.check_time(int(x.shape[1]), argument)
        return np.asarray(x, dtype=spec.dtype)

    def _compile_output(self, graph_kwargs, time_steps):
        # one compiled function per setting, so its random generator keeps advancing
        # across calls (a new function would start again from the same seed)
        key = (time_steps, repr(sorted(graph_kwargs.items())))
        if key in self._functions:
            return self._functions[key]
        graph = self.graph(time_steps)
        allowed = [
            name
            for name in regularizers.names()
            if regularizers.lookup(name).modify_graph is not Regularizer.modify_graph
        ]
        for name in graph_kwargs:
            if name not in allowed:
                hint = closest_hint(name, allowed)
                raise TypeError(
                    f"predict: {name!r} is not a noise or dropout regularizer; predict takes "
                    f"{', '.join(sorted(allowed))}{hint}"
                )
        regs = regularizers.from_kwargs(**graph_kwargs)
        prepare(self.mode, self.dtype)
        with pytensor.config.change_flags(floatX=self.dtype):
            for reg in regs:
                graph = reg.modify_graph(graph)
            inputs = [self.x] if self.lengths is None else [self.x, self.lengths]
            with quiet():
                function = QuietFirstCall(
                    pytensor.function(
                        inputs,
                        graph.outputs[self.output_name],
                        updates=graph.updates,
                        mode=resolve(self.mode),
                    ),
                    self.mode,
                )
        self._functions[key] = function
        return function

    def _check_lengths(self, x, lengths, argument="lengths"):
        """Per-example lengths as int32 (every sequence full when None)."""
        if self.lengths is None:
            if lengths is not None:
                raise TypeError(
                    f"{argument}: this model takes no lengths (its input entry has no lengths=True)"
                )
            return None
        if lengths is None:
            return np.full(len(x), x.shape[1], "int32")
        # the same check, and the same message, as training's: one length per
        # sequence, each in 0..(padded steps of x)
        x_spec = self._input_spec()
        _, lengths = check_arrays([x, lengths], [x_spec, self._lengths_spec()], argument=argument)
        return np.asarray(lengths).astype("int32")

    def _output(self, x, graph_kwargs, lengths=None, batch_size=None):
        x = self._check_x(x)
        lengths = self._check_lengths(x, lengths)
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int | np.integer)
            or batch_size < 1
        ):
            raise InvalidArgument(
                "batch_size", f"must be a positive int or None, got {batch_size!r}", batch_size
            )
        function = self._compile_output(graph_kwargs, self.static_time(self.mode, x))
        step = len(x) if batch_size is None else int(batch_size)
        parts = []
        for start in range(0, max(len(x), 1), max(step, 1)):
            rows = slice(start, start + step)
            args = [x[rows]] if lengths is None else [x[rows], lengths[rows]]
            parts.append(np.asarray(function(*args)))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def predict(self, x, lengths=None, batch_size=None, **graph_regularizers):
        """The network's output for ``x``.

        ``lengths`` gives each sequence's real steps for a model whose input
        entry says ``lengths=True`` (default: every step is real); padded
        steps of a sequence output are computed but mean nothing.
        ``batch_size`` computes that many examples per call (default: all at
        once), so a large array needs no more memory than a batch's.
        Keyword arguments are graph regularizers applied at prediction time,
        e.g. ``hidden_dropout=0.5`` for Monte-Carlo dropout.
        """
        return self._output(x, graph_regularizers, lengths, batch_size)

    def _step_weights(self, x, weights, lengths, argument="score"):
        """Sample weights with padded steps of sequence outputs weighing 0 (for scores).

        Refuses weights that leave nothing to average: every example (or
        every real step) weighing 0.
        """
        shape = self.structure.shapes[self.output_name]
        if lengths is not None and shape.kind == "sequence":
            x = np.asarray(x)
            n = steps(shape.timeline, int(x.shape[1]))
            kept = steps(shape.timeline, np.asarray(lengths).astype(np.int64))
            mask = np.arange(n)[None, :] < kept[:, None]
            weights = mask.astype(np.float64) * (1.0 if weights is None else np.asarray(weights))
            what = "every real step (lengths > 0) weighs 0"
        else:
            what = "every sample weight is 0"
        if weights is not None and not np.any(np.asarray(weights) > 0):
            raise InvalidArgument(
                argument, f"{what}; at least one must be positive (nothing to average)"
            )
        return weights
