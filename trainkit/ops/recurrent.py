r"""Fused recurrent PyTensor ops: the whole time loop of an RNN, LSTM or GRU in one op.

:func:`fused_rnn` builds the graph; :class:`FusedRecurrent` is the forward op
and :class:`FusedRecurrentGrad` its hand-written backward op
(backpropagation through time). Both run :mod:`trainkit.ops.kernels` (NumPy
on whole ``(batch, gates)`` tiles per step) from ``perform``; PyTensor's
Numba backend calls the same code through one object-mode hop per op (about
0.1 ms, nothing to JIT-compile), and :mod:`trainkit.ops.jax` gives both ops
``jax.lax.scan`` implementations for ``mode="JAX"``.

The maths of each form is that of :mod:`trainkit.recurrent` (gate order i,
f, g, o; GRU reset before the product), with :math:`z_t` = ``projected[t]``
:math:`+ h_{t-1} W_{hh}`:

- ``rnn``: :math:`h_t = \phi(z_t)`;
- ``lstm``: :math:`c_t = \sigma(f_t) c_{t-1} + \sigma(i_t) \tanh(g_t)`,
  :math:`h_t = \sigma(o_t)\,\phi(c_t)`;
- ``gru``: :math:`[z, r] = \sigma(\cdot)`, :math:`n_t = \phi(x^n_t + (r_t h_{t-1}) U_n)`,
  :math:`h_t = (1 - z_t) n_t + z_t h_{t-1}`.

Second derivatives (``contractive`` differentiates a Jacobian) go through
the ``scan`` reference of :mod:`trainkit.ops.reference`: the backward op's
gradient rebuilds the same vector-Jacobian product from a fresh scan and
differentiates that, so they are exact but run at scan's speed.
:data:`SECOND_DERIVATIVES` is ``True``.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar import upcast

from regularizers.errors import unknown

from . import kernels

__all__ = [
    "SECOND_DERIVATIVES",
    "FusedRecurrent",
    "FusedRecurrentGrad",
    "UnsupportedError",
    "fused_rnn",
    "supported",
]

#: whether the fused ops can be differentiated twice (yes: through the scan reference)
SECOND_DERIVATIVES = True


class UnsupportedError(NotImplementedError):
    """A form or activation the fused ops do not implement (use ``scan`` instead)."""


def supported(form, activation="tanh", second_derivatives=False):
    """Whether :func:`fused_rnn` can serve this layer.

    >>> supported("lstm", "tanh"), supported("gru", "softmax"), supported("rnn", second_derivatives=True)
    (True, False, True)
    """
    ok = form in kernels.BLOCKS and activation in kernels.ACTIVATIONS
    return ok and (SECOND_DERIVATIVES or not second_derivatives)


def _outputs(form):
    return ("out", "cell", "last") if form == "lstm" else ("out", "last")


class FusedRecurrent(Op):
    """Forward op: ``(projected, hh, h0[, lengths])`` → ``(out, [cell,] last, *workspace)``.

    ``projected`` is time-major ``(T, B, G H)``, ``hh`` ``(H, G H)``, ``h0``
    ``(B, H)``, ``lengths`` an optional integer ``(B,)``. ``out``/``cell`` are
    ``(T, B, H)`` with zeros at padded steps, ``last`` is ``(B, H)``; the
    workspace (``kernels.workspace_names(form)``) is for the backward op only.
    """

    __props__ = ("form", "activation", "reverse")

    def __init__(self, form, activation="tanh", reverse=False):
        if not supported(form, activation):
            raise UnsupportedError(
                f"fused recurrent op: form {form!r} with activation {activation!r} is not supported"
            )
        self.form, self.activation, self.reverse = form, activation, bool(reverse)

    @property
    def n_outputs(self):
        return len(_outputs(self.form)) + len(kernels.workspace_names(self.form))

    def make_node(self, projected, hh, h0, lengths=None):
        inputs = [projected, hh, h0] + ([] if lengths is None else [lengths])
        T, B, _ = projected.type.shape
        H = hh.type.shape[0]
        dtype = projected.dtype
        seq = pt.tensor(dtype=dtype, shape=(T, B, H))
        outputs = [seq.type() for _ in range(len(_outputs(self.form)) - 1)]
        outputs.append(pt.tensor(dtype=dtype, shape=(B, H)))
        for _ in kernels.workspace_names(self.form):
            outputs.append(pt.tensor(dtype=dtype, shape=(None, None, None)))
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        projected, hh, h0 = inputs[:3]
        lengths = inputs[3] if len(inputs) > 3 else np.full(projected.shape[1], projected.shape[0])
        results = kernels.forward(
            self.form, self.activation, self.reverse, projected, hh, h0, lengths
        )
        for storage, value in zip(output_storage, results, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        (T, B, GH), (H, _), _ = shapes[:3]
        seq = [(T, B, H)] * (len(_outputs(self.form)) - 1)
        work = {
            "states": (T + 1, B, H),
            "cells": (T + 1, B, H),
            "gates": (T, B, GH),
            "act_cells": (T, B, H),
            "reset_states": (T, B, H),
        }
        return seq + [(B, H)] + [work[w] for w in kernels.workspace_names(self.form)]

    def connection_pattern(self, node):
        n = len(node.outputs)
        return [[True] * n] * 3 + [[False] * n] * (len(node.inputs) - 3)

    def pullback(self, inputs, outputs, output_grads):
        visible = len(_outputs(self.form))
        for g, name in zip(output_grads[visible:], kernels.workspace_names(self.form), strict=True):
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError(
                    f"fused recurrent op: the workspace output {name!r} "
                    "is internal and cannot be differentiated"
                )
        present = tuple(not isinstance(g.type, DisconnectedType) for g in output_grads[:visible])
        grads = [g for g, p in zip(output_grads[:visible], present, strict=True) if p]
        op = FusedRecurrentGrad(self.form, self.activation, self.reverse, present)
        d = op(*inputs, *grads, *outputs[visible:])
        return list(d) + [disconnected_type()] * (len(inputs) - 3)


class FusedRecurrentGrad(Op):
    """Backward op (BPTT) of :class:`FusedRecurrent`.

    Inputs: the forward op's inputs, the gradients of the visible outputs
    flagged in ``present`` (in the order ``out, [cell,] last``), then the
    forward workspace. Outputs: gradients of ``projected``, ``hh`` and ``h0``.
    Not differentiable (see :data:`SECOND_DERIVATIVES`).
    """

    __props__ = ("form", "activation", "reverse", "present")

    def __init__(self, form, activation, reverse, present):
        self.form, self.activation, self.reverse = form, activation, bool(reverse)
        self.present = tuple(bool(p) for p in present)

    def make_node(self, projected, hh, h0, *rest):
        n_in = len(rest) - sum(self.present) - len(kernels.workspace_names(self.form))
        if n_in not in (0, 1):
            raise TypeError("FusedRecurrentGrad: wrong number of inputs")
        inputs = [projected, hh, h0, *rest]
        return Apply(self, inputs, [projected.type(), hh.type(), h0.type()])

    def _split(self, inputs):
        n_work = len(kernels.workspace_names(self.form))
        n_grads = sum(self.present)
        lengths = inputs[3] if len(inputs) - 3 - n_work - n_grads == 1 else None
        first = 3 + (lengths is not None)
        grads = iter(inputs[first : first + n_grads])
        full = [next(grads) if p else None for p in self.present]
        return lengths, full, inputs[first + n_grads :]

    def perform(self, node, inputs, output_storage):
        projected, hh, h0 = inputs[:3]
        lengths, grads, work = self._split(inputs)
        if lengths is None:
            lengths = np.full(projected.shape[1], projected.shape[0])
        results = kernels.backward(
            self.form, self.activation, self.reverse, hh, lengths, grads, work
        )
        for storage, value, like in zip(output_storage, results, inputs[:3], strict=True):
            storage[0] = value.astype(like.dtype, copy=False)

    def infer_shape(self, fgraph, node, shapes):
        return shapes[:3]

    def connection_pattern(self, node):
        n_len = len(node.inputs) - 3 - sum(self.present) - len(kernels.workspace_names(self.form))
        pattern = [[True] * 3] * len(node.inputs)
        if n_len:
            pattern[3] = [False] * 3
        # the workspace is recomputed by the scan that gives second derivatives
        n_work = len(kernels.workspace_names(self.form))
        return pattern[: len(pattern) - n_work] + [[False] * 3] * n_work

    def pullback(self, inputs, outputs, output_grads):
        """Second derivatives, through the ``scan`` reference (:mod:`trainkit.ops.reference`).

        This op's outputs are the vector-Jacobian product of the forward op
        with the incoming gradients; the same product is rebuilt from a fresh
        scan of the same recurrence and differentiated symbolically. The
        workspace inputs are recomputed there, so they get no gradient.
        """
        from .reference import scan_rnn

        projected, hh, h0 = inputs[:3]
        lengths, grads, _ = self._split(inputs)
        ref = scan_rnn(self.form, projected, hh, h0, lengths, self.reverse, self.activation)
        known = {
            ref[name]: g
            for name, g in zip(_outputs(self.form), grads, strict=True)
            if g is not None
        }
        vjp = pytensor.grad(
            None, [projected, hh, h0], known_grads=known, disconnected_inputs="ignore"
        )
        cotangents = {
            v: g
            for v, g in zip(vjp, output_grads, strict=True)
            if not isinstance(g.type, DisconnectedType)
        }
        n_len = lengths is not None
        float_inputs = [projected, hh, h0] + [g for g in grads if g is not None]
        second = pytensor.grad(
            None,
            float_inputs,
            known_grads=cotangents,
            disconnected_inputs="ignore",
            return_disconnected="disconnected",
        )
        n_work = len(kernels.workspace_names(self.form))
        return (
            second[:3] + [disconnected_type()] * n_len + second[3:] + [disconnected_type()] * n_work
        )


def fused_rnn(
    form, projected, hh, h0=None, lengths=None, reverse=False, activation="tanh", time_major=False
):
    r"""Run a recurrent layer's whole time loop as one fused op.

    Parameters
    ----------
    form : {'rnn', 'lstm', 'gru'}
        The recurrence (see the module docstring for the maths).
    projected : tensor3
        The input projection :math:`x W_{xh} + b` for every step,
        ``(batch, time, blocks * H)`` (``(time, batch, ...)`` if ``time_major``);
        blocks are i, f, g, o (lstm), z, r, n (gru).
    hh : matrix
        Recurrent weights ``(H, blocks * H)``.
    h0 : matrix, optional
        Initial state ``(batch, H)``; zeros by default. The LSTM cell starts at 0.
    lengths : int vector, optional
        Real steps per example ``(batch,)``, each in ``0..time``; default all
        full. Steps ``t >= lengths[b]`` are padding: they leave the state
        unchanged and their ``out``/``cell`` are **zero**.
    reverse : bool
        Run each example backward from its own last real step
        (``t = lengths[b] - 1`` down to 0); outputs stay at their time positions.
    activation : {'tanh', 'sigmoid', 'relu', 'linear'}
        :math:`\phi` above; anything else raises :class:`UnsupportedError`.
    time_major : bool
        Whether ``projected`` and the sequence outputs are ``(time, batch, ...)``.

    Returns
    -------
    dict
        ``out`` (state sequence), ``cell`` (lstm only), both ``(batch, time, H)``
        (or time-major), and ``last`` ``(batch, H)``: the state after each
        example's last real step (``h0`` for length 0). Gradients flow from
        every output into ``projected``, ``hh`` and ``h0``; second derivatives go
        through the scan reference (exact, at scan's speed).
    """
    if form not in kernels.BLOCKS:
        raise UnsupportedError(unknown("form", form, sorted(kernels.BLOCKS), kind="fused form"))
    if activation not in kernels.ACTIVATIONS:
        raise UnsupportedError(
            unknown(
                "activation", activation, sorted(kernels.ACTIVATIONS), kind="fused-op activation"
            )
            + "; use the scan implementation"
        )
    projected, hh = pt.as_tensor(projected), pt.as_tensor(hh)
    if projected.ndim != 3 or hh.ndim != 2:
        raise ValueError(
            f"fused_rnn: projected must be 3-D and hh 2-D; got {projected.ndim}-D and {hh.ndim}-D"
        )
    dtype = upcast(projected.dtype, hh.dtype)
    projected, hh = pt.cast(projected, dtype), pt.cast(hh, dtype)
    if not time_major:
        projected = projected.dimshuffle(1, 0, 2)
    H = hh.shape[0]
    if h0 is None:
        h0 = pt.zeros((projected.shape[1], H), dtype=dtype)
    h0 = pt.cast(pt.as_tensor(h0), dtype)
    inputs = [projected, hh, h0]
    if lengths is not None:
        lengths = pt.as_tensor(lengths)
        if lengths.ndim != 1 or not lengths.dtype.startswith(("int", "uint")):
            raise TypeError(f"fused_rnn: lengths must be an integer vector, got {lengths.type}")
        inputs.append(lengths)
    results = FusedRecurrent(form, activation, reverse)(*inputs)
    named = dict(zip(_outputs(form), results, strict=False))
    if not time_major:
        for key in named:
            if key != "last":
                named[key] = named[key].dimshuffle(1, 0, 2)
    return named
