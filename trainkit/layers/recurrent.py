r"""Recurrent layers (``rnn``, ``lstm``, ``gru``) on batch-major sequences.

Input and output are ``(batch, time, features)``. The input projection
:math:`x_t W + b` is computed for all time steps at once (time-major), outside
the loop; the recurrence runs as one fused op (:func:`trainkit.ops.fused_rnn`,
its whole time loop and its backward pass in one call) or, with
``impl='scan'``, as a ``pytensor.scan`` (:mod:`trainkit.ops.reference`).
Both give the same numbers; ``impl='auto'`` (the default) takes the fused op
whenever it implements the layer's activation (tanh, sigmoid, relu, linear)
and scan otherwise.

Layer-dict options of the recurrent forms:

``return_sequences`` (default True)
    With False the layer also outputs ``<name>:last``, the state after each
    sequence's last real step, and passes that on (sequence-to-one).
``impl`` (``'auto'``, ``'fused'``, ``'scan'``)
    How the recurrence runs (see above). Second derivatives (``contractive``)
    work with both: the fused op's are computed through the scan reference.
``bidirectional`` (default False)
    Run a second, independent recurrence backward in time, with parameters
    ``<name>.xh_bwd``, ``<name>.hh_bwd``, ``<name>.b_bwd``. Its outputs are
    ``<name>:fwd`` and ``<name>:bwd`` (states, in real time order; LSTM cells
    ``<name>:fwd_cell``, ``<name>:bwd_cell``); ``<name>:out`` is their merge.
    On a padded sequence the backward direction starts at the sequence's own
    last real step. ``<name>:last`` merges the forward state after the last
    real step with the backward state after its whole run (at time 0).
``merge`` (``'concat'``, default, ``'sum'``, ``'mean'``)
    How a bidirectional layer merges its directions: concatenation (forward
    units first; the layer's output is then ``2 * size`` wide), or the
    elementwise sum or mean.

With per-example ``lengths`` (see :class:`trainkit.Network`), a step
``t >= lengths[b]`` is padding: it does not change the state carried on, and
every sequence output is exactly zero there. Initial states are zero. Each
layer's state sequences (``:out``, or ``:fwd`` and ``:bwd``) are marked
*recurrent*, the default target of ``recurrent_norm`` and ``recurrent_state``.
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument, closest_hint

from . import activations
from .base import Layer, glorot, orthogonal, register_form
from .shapes import Shape

__all__ = ["RNN", "LSTM", "GRU", "IMPLS", "MERGES"]

#: how a recurrence may run
IMPLS = ("auto", "fused", "scan")
#: how a bidirectional layer merges its two directions
MERGES = ("concat", "sum", "mean")


class _Recurrent(Layer):
    recurrent = True
    default_activation = "tanh"
    sequence_form = True
    reads = ("sequence",)
    options = {"return_sequences": True, "impl": "auto", "bidirectional": False, "merge": "concat"}
    #: options left out of ``spec()`` while at their default (older files lack them)
    quiet_options = ("impl", "bidirectional", "merge")
    #: number of gate blocks in the weight matrices
    blocks = 1

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        o = self.config_options
        where = f"layer {name!r}"
        for key in ("return_sequences", "bidirectional"):
            if not isinstance(o[key], bool):
                raise InvalidArgument(where, f"{key} must be True or False, got {o[key]!r}")
        for key, allowed in (("impl", IMPLS), ("merge", MERGES)):
            if o[key] not in allowed:
                raise InvalidArgument(
                    where,
                    f"{key} must be one of {', '.join(allowed)}, got {o[key]!r}"
                    f"{closest_hint(o[key], allowed) if isinstance(o[key], str) else ''}",
                )
        if o["impl"] == "fused" and not self.fusable:
            raise InvalidArgument(
                where,
                f"impl='fused' does not implement activation {activation!r}; the fused op "
                f"takes tanh, sigmoid, relu, linear (use impl='auto' or 'scan')",
            )

    @classmethod
    def widths(cls, size, options):
        """(output width, input-projection width) of a layer with this size and these options."""
        wide = options.get("bidirectional", False) and options.get("merge", "concat") == "concat"
        return size * (2 if wide else 1), size * cls.blocks

    @classmethod
    def param_shapes_of(cls, name, n_in, size, options):
        """``{parameter name: shape}`` for a layer of these sizes and options."""
        width = size * cls.blocks
        shapes = OrderedDict()
        suffixes = ("", "_bwd") if options.get("bidirectional", False) else ("",)
        for s in suffixes:
            shapes[f"{name}.xh{s}"], shapes[f"{name}.hh{s}"] = (n_in, width), (size, width)
            shapes[f"{name}.b{s}"] = (width,)
        return shapes

    @property
    def output_size(self):
        return self.widths(self.size, self.config_options)[0]

    def param_shapes(self):
        return self.param_shapes_of(self.name, self.n_in, self.size, self.config_options)

    def output_shape(self, shape):
        width = self.output_size
        if self.config_options["return_sequences"]:
            return shape.with_width(width)
        return Shape("features", (width,))

    def named_shapes(self):
        seq = self.in_shape.with_width(self.output_size)
        one = self.in_shape.with_width(self.size)
        tags = ["out"]
        if self.bidirectional:
            tags = ["fwd", "bwd", *(["fwd_cell", "bwd_cell"] if self.form == "lstm" else []), "out"]
        elif self.form == "lstm":
            tags.append("cell")
        shapes = OrderedDict((f"{self.name}:{t}", seq if t == "out" else one) for t in tags)
        if not self.config_options["return_sequences"]:
            shapes[f"{self.name}:last"] = self.out_shape
        return shapes

    @property
    def main_output(self):
        return f"{self.name}:{'out' if self.config_options['return_sequences'] else 'last'}"

    @property
    def bidirectional(self):
        return self.config_options["bidirectional"]

    @property
    def fusable(self):
        from ..ops import supported

        return supported(self.form, self.activation)

    def init_params(self, rng):
        for s in ("", "_bwd") if self.bidirectional else ("",):
            self.add_param(f"xh{s}", glorot(rng, self.n_in, self.size * self.blocks, self.dtype))
            hh = [orthogonal(rng, self.size, self.dtype) for _ in range(self.blocks)]
            self.add_param(f"hh{s}", np.concatenate(hh, axis=1))
            self.add_param(f"b{s}", self.initial_bias())

    def initial_bias(self):
        return np.zeros(self.size * self.blocks, self.dtype)

    def output_ndim(self, input_ndim):
        return 3 if self.config_options["return_sequences"] else 2

    def recurrent_outputs(self):
        """Names of this layer's state sequences (the default of ``recurrent_*`` penalties)."""
        if self.bidirectional:
            return [f"{self.name}:fwd", f"{self.name}:bwd"]
        return [f"{self.name}:out"]

    def uses_scan(self, impl=None):
        """Whether this layer builds a scan (given the network's ``impl`` override)."""
        impl = impl or self.config_options["impl"]
        return impl == "scan" or (impl == "auto" and not self.fusable)

    def run(self, xt, lengths, reverse, suffix, impl):
        """One direction: time-major input → dict of time-major sequences and ``last``."""
        from ..ops import fused_rnn
        from ..ops.reference import scan_rnn

        projected = xt @ self.p(f"xh{suffix}") + self.p(f"b{suffix}")
        hh = self.p(f"hh{suffix}")
        if not self.uses_scan(impl):
            return fused_rnn(
                self.form,
                projected,
                hh,
                lengths=lengths,
                reverse=reverse,
                activation=self.activation,
                time_major=True,
            )
        h0 = pt.zeros((xt.shape[1], self.size), dtype=self.dtype)
        act = activations.get(self.activation)
        return scan_rnn(self.form, projected, hh, h0, lengths, reverse, act)

    def _merge(self, a, b):
        how = self.config_options["merge"]
        if how == "concat":
            # two set_subtensor rather than concatenate: concatenate's gradient (Split),
            # vectorised by contractive's Jacobian, breaks a PyTensor rewrite on Numba
            n = self.size
            both = pt.zeros((*(a.shape[k] for k in range(a.ndim - 1)), 2 * n), dtype=a.dtype)
            both = pt.set_subtensor(both[..., :n], a)
            return pt.set_subtensor(both[..., n:], b)
        total = a + b
        return total if how == "sum" else total * np.asarray(0.5, self.dtype)

    def _last(self, seq, lengths):
        """The state after each sequence's last real step, read from the batch-major ``seq``.

        Read from the state sequence (not the op's own ``last``), so noise or
        dropout put on ``<name>:out`` reaches what the layer passes on, as it
        did when ``:last`` was ``:out[:, -1]``. Zeros for an empty sequence
        (the initial state).
        """
        if lengths is None:
            return seq[:, -1]
        steps = pt.cumsum(pt.ones_like(seq[:, :, 0], dtype=lengths.dtype), axis=1)
        pick = pt.cast(pt.eq(steps, lengths[:, None]), seq.dtype)  # (B, T): t = L - 1
        return pt.sum(seq * pick[:, :, None], axis=1)

    def build(self, x, lengths=None, impl=None):
        """Outputs of this layer for batch-major ``x``, with optional per-example ``lengths``.

        ``impl`` overrides the layer's own choice for this build (the
        network passes ``'scan'`` to compare implementations).
        """
        if x.ndim != 3:
            raise ValueError(
                f"layer {self.name!r}: a {self.form} layer needs (batch, time, features) input; "
                f"the layer before it gives {x.ndim} dimensions (return_sequences=False?)"
            )
        if impl == "fused" and not self.fusable:
            impl = "scan"
        xt = x.dimshuffle(1, 0, 2)
        outputs = OrderedDict()
        cells = ("cell",) if self.form == "lstm" else ()
        fwd = self.run(xt, lengths, False, "", impl)
        if not self.bidirectional:
            outputs[f"{self.name}:out"] = fwd["out"].dimshuffle(1, 0, 2)
            for c in cells:
                outputs[f"{self.name}:{c}"] = fwd[c].dimshuffle(1, 0, 2)
            last = self._last(outputs[f"{self.name}:out"], lengths)
        else:
            bwd = self.run(xt, lengths, True, "_bwd", impl)
            for tag, res in (("fwd", fwd), ("bwd", bwd)):
                outputs[f"{self.name}:{tag}"] = res["out"].dimshuffle(1, 0, 2)
                for c in cells:
                    outputs[f"{self.name}:{tag}_{c}"] = res[c].dimshuffle(1, 0, 2)
            outputs[f"{self.name}:out"] = self._merge(
                outputs[f"{self.name}:fwd"], outputs[f"{self.name}:bwd"]
            )
            # the backward run ends at t = 0 (zeros for an empty sequence, as h0)
            last = self._merge(
                self._last(outputs[f"{self.name}:fwd"], lengths), outputs[f"{self.name}:bwd"][:, 0]
            )
        main = outputs[f"{self.name}:out"]
        if not self.config_options["return_sequences"]:
            main = last
            outputs[f"{self.name}:last"] = main
        return outputs, main


@register_form("rnn")
class RNN(_Recurrent):
    r"""Simple (Elman) recurrent layer.

    .. math:: h_t = f(x_t W_{xh} + h_{t-1} W_{hh} + b)

    Parameters ``<name>.xh`` (Glorot uniform), ``<name>.hh`` (orthogonal),
    ``<name>.b`` (zeros); output ``<name>:out``. Default activation tanh.
    """


@register_form("lstm")
class LSTM(_Recurrent):
    r"""Long short-term memory layer (Hochreiter & Schmidhuber 1997; no peepholes).

    .. math::
        [i, f, g, o]_t &= x_t W_{xh} + h_{t-1} W_{hh} + b \\
        c_t &= \sigma(f_t) \odot c_{t-1} + \sigma(i_t) \odot \tanh(g_t) \\
        h_t &= \sigma(o_t) \odot \phi(c_t)

    with :math:`\phi` the layer's activation (default tanh). Parameters
    ``<name>.xh`` (``n_in x 4 size``), ``<name>.hh`` (``size x 4 size``, each
    block orthogonal) and ``<name>.b`` (forget-gate bias 1, Jozefowicz et al.
    2015; others 0), gate order i, f, g, o as PyTorch and Keras. Outputs
    ``<name>:out`` (:math:`h`) and ``<name>:cell`` (:math:`c`).
    """

    blocks = 4

    def initial_bias(self):
        b = np.zeros(4 * self.size, self.dtype)
        b[self.size : 2 * self.size] = 1
        return b


@register_form("gru")
class GRU(_Recurrent):
    r"""Gated recurrent unit (Cho et al. 2014, reset applied before the product).

    .. math::
        z_t &= \sigma(x_t W_z + h_{t-1} U_z + b_z), \quad
        r_t = \sigma(x_t W_r + h_{t-1} U_r + b_r) \\
        n_t &= \phi(x_t W_n + (r_t \odot h_{t-1}) U_n + b_n) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    with :math:`\phi` the layer's activation (default tanh). Parameters
    ``<name>.xh`` (``n_in x 3 size``, blocks z, r, n), ``<name>.hh``
    (``size x 3 size``, each block orthogonal), ``<name>.b`` (zeros); output
    ``<name>:out``. Keras' ``reset_after=False`` variant; PyTorch applies
    the reset after the product.
    """

    blocks = 3
