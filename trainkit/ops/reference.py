r"""The ``pytensor.scan`` reference of the fused ops: same maths, same outputs, any derivative.

:func:`scan_rnn` takes the arguments of :func:`trainkit.ops.fused_rnn` and
builds the recurrence as a ``pytensor.scan`` whose step is plain elementwise
ops and one matrix product per gate group, so PyTensor can differentiate it
as often as needed. Recurrent layers use it with ``impl='scan'``, for forms
or activations the fused op lacks, and the fused backward op uses it for
second derivatives.

With ``lengths``, a step ``t >= lengths[b]`` is padding: the state is kept
(``switch``) and the output is zero, exactly as the fused op. A ``reverse``
run walks real time ``T - 1, ..., 0``: an example's padded steps come first
and keep the initial state, so it starts at its own last real step (no
gather, which vectorises badly for ``contractive``'s Jacobian).

The scan op is a :class:`PristineScan`: PyTensor's backends rewrite a scan's
inner graph *in place* when they compile it, after which it can no longer be
differentiated (``pullback not implemented for Dot22`` in ``FAST_COMPILE``,
``grad is not implemented for Composite`` on Numba). A gradient built after
some function was compiled from the same graph (the trainer builds its
validation penalties after compiling the training step) then fails.
:class:`PristineScan` compiles a clone of its inner graph instead and keeps
the original differentiable.
"""

from copy import copy

import pytensor
import pytensor.tensor as pt
from pytensor.scan.op import Scan

__all__ = ["PristineScan", "scan_rnn", "pristine"]

#: gate blocks per form (as in the fused kernels)
BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}


class PristineScan(Scan):
    """A ``Scan`` whose backends compile a clone of the inner graph, never the original."""

    def plain(self):
        """A plain ``Scan`` with a deep copy of this inner graph, for a backend to rewrite."""
        op = copy(self)
        op.__class__ = Scan
        op.fgraph = self.fgraph.clone(clone_inner_graphs=True)
        op._fn = None
        return op

    @property
    def fn(self):
        if getattr(self, "_fn", None) is None:
            self._fn = self.plain().fn
        return self._fn


def _register_numba():
    from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key
    from pytensor.link.numba.dispatch.scan import numba_funcify_Scan

    @register_funcify_and_cache_key(PristineScan)
    def numba_funcify_pristine_scan(op, node, **kwargs):
        return numba_funcify_Scan(op.plain(), node, **kwargs)


def register_jax():
    """Register the JAX dispatch (called once PyTensor's JAX backend is imported)."""
    from pytensor.link.jax.dispatch import jax_funcify
    from pytensor.link.jax.dispatch.scan import jax_funcify_Scan

    @jax_funcify.register(PristineScan)
    def jax_funcify_pristine_scan(op, node=None, **kwargs):
        return jax_funcify_Scan(op.plain(), node=node, **kwargs)


_register_numba()


def pristine(outputs):
    """Turn the scan node behind ``outputs`` (fresh from ``pytensor.scan``) into a PristineScan."""
    seen = set()
    stack = list(outputs)
    while stack:
        var = stack.pop()
        node = var.owner
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if type(node.op) is Scan:
            op = copy(node.op)
            op.__class__ = PristineScan
            node.op = op
            continue
        stack.extend(node.inputs)
    return outputs


#: the fused ops' activations, for second derivatives (layers pass their own callables)
ACTIVATIONS = {
    "tanh": pt.tanh,
    "sigmoid": pt.sigmoid,
    "relu": lambda z: pt.maximum(z, 0),
    "linear": lambda z: z,
}


def _step(form, activation, hh, H):
    act = ACTIVATIONS[activation] if isinstance(activation, str) else activation
    if form == "rnn":

        def step(xp, h):
            return (act(xp + h @ hh),)

    elif form == "lstm":

        def step(xp, h, c):
            z = xp + h @ hh
            i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
            c_new = pt.sigmoid(f) * c + pt.sigmoid(i) * pt.tanh(g)
            return pt.sigmoid(o) * act(c_new), c_new

    else:
        hh_zr, hh_n = hh[:, : 2 * H], hh[:, 2 * H :]

        def step(xp, h):
            zr = pt.sigmoid(xp[:, : 2 * H] + h @ hh_zr)
            z, r = zr[:, :H], zr[:, H:]
            cand = act(xp[:, 2 * H :] + (r * h) @ hh_n)
            return ((1 - z) * cand + z * h,)

    return step


def scan_rnn(form, projected, hh, h0, lengths=None, reverse=False, activation="tanh", mode=None):
    """The recurrence as a scan: time-major ``projected`` ``(T, B, G H)`` → dict of outputs.

    Returns ``out`` (and ``cell`` for lstm) ``(T, B, H)`` and ``last``
    ``(B, H)``, as :func:`trainkit.ops.fused_rnn` with ``time_major=True``.
    ``h0`` is required (``(B, H)``); ``activation`` is a name of
    :data:`ACTIVATIONS` or a callable.
    """
    H = hh.type.shape[0] if hh.type.shape[0] is not None else hh.shape[0]
    step = _step(form, activation, hh, H)
    names = ("out", "cell") if form == "lstm" else ("out",)
    init = [h0, pt.zeros_like(h0)] if form == "lstm" else [h0]
    if lengths is None:
        xs = projected[::-1] if reverse else projected

        def masked(xp, *carry):
            return step(xp, *carry)

        sequences = [xs]
    else:
        # step numbers without arange, whose length PyTensor's JAX backend cannot trace
        ones = pt.ones_like(projected[:, :, 0], dtype=lengths.dtype)
        steps = pt.cumsum(ones, axis=0) - 1  # (T, B)
        valid = pt.lt(steps, lengths[None, :])  # (T, B) in real time
        # reverse: walk real time T-1 .. 0; the padded steps come first and keep h0,
        # so each example starts from its own last real step
        xs, ms = (projected[::-1], valid[::-1]) if reverse else (projected, valid)

        def masked(xp, m, *carry):
            new = step(xp, *carry)
            keep = m[:, None]
            return tuple(pt.switch(keep, n, c) for n, c in zip(new, carry, strict=True))

        sequences = [xs, ms]

    # scan returns the carried states; padded steps repeat the previous one
    seqs = pytensor.scan(
        masked, sequences=sequences, outputs_info=init, return_updates=False, mode=mode
    )
    seqs = list(seqs) if isinstance(seqs, (list, tuple)) else [seqs]
    pristine(seqs)
    last = seqs[0][-1]
    if reverse:
        seqs = [s[::-1] for s in seqs]
    if lengths is not None:
        seqs = [pt.switch(valid[:, :, None], s, pt.zeros_like(s)) for s in seqs]
    T = projected.type.shape[0]
    if T is not None:  # keep the static length (JAX compiles a scan's gradient only with it)
        seqs = [pt.specify_shape(s, (T, None, None)) for s in seqs]
    result = dict(zip(names, seqs, strict=True))
    result["last"] = last
    return result
