r"""JAX implementations of the fused recurrent ops (``jax.lax.scan``), for ``mode="JAX"``.

The forward op runs :func:`jax_forward`, a ``lax.scan`` over loop time whose
length comes from the traced array's static shape, so no sequence length
needs declaring. Padded steps are masked (state kept, output zero); reverse
runs gather each example's steps with ``take_along_axis`` (the index map
:math:`t \mapsto L_b - 1 - t` is its own inverse). The forward op also
returns its workspace (states, activated gates), and the backward op is a
hand-written reverse ``lax.scan`` over it (:func:`jax_backward`, the maths
of the NumPy kernels): the forward recurrence runs once per update, not
again inside an automatic ``vjp``, and the weight gradient is one matrix
product after the loop.

Registration waits for PyTensor's JAX backend to be imported (a one-shot
import hook), so importing trainkit does not import JAX.
"""

import importlib.abc
import importlib.util
import sys

from .recurrent import FusedRecurrent, FusedRecurrentGrad

_DISPATCH = "pytensor.link.jax.dispatch"


def _activation(name):
    import jax
    import jax.numpy as jnp

    return {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "linear": _same}[name]


def _same(v):
    return v


def _derivative(name, y):
    """:math:`f'` of activation ``name`` from its output ``y`` (as the NumPy kernels)."""
    if name == "tanh":
        return 1 - y * y
    if name == "sigmoid":
        return y * (1 - y)
    if name == "relu":
        return (y > 0).astype(y.dtype)
    return 1


class _Time:
    """Loop time ↔ real time for one call: ``valid`` ``(T, B)`` and the two maps.

    Example ``b`` reads real step ``s`` (forward) or ``L_b - 1 - s`` (reverse)
    at loop step ``s < L_b``; the reverse map is its own inverse.
    """

    def __init__(self, T, reverse, lengths):
        import jax.numpy as jnp

        self.reverse, self.tidx, self.valid = reverse, None, None
        if lengths is not None:
            steps = jnp.arange(T)
            self.valid = steps[:, None] < lengths[None, :]
            if reverse:
                self.tidx = jnp.where(
                    self.valid, lengths[None, :] - 1 - steps[:, None], steps[:, None]
                )

    def swap(self, seq):
        """A ``(T, B, ...)`` sequence from real to loop time, or back."""
        import jax.numpy as jnp

        if self.tidx is not None:
            return jnp.take_along_axis(seq, self.tidx[:, :, None], axis=0)
        return seq[::-1] if self.reverse and self.valid is None else seq

    def masks(self, T, B):
        import jax.numpy as jnp

        return jnp.ones((T, B), bool) if self.valid is None else self.valid


def jax_forward(form, activation, reverse, projected, hh, h0, lengths=None):
    """``(out, [cell,] last, *workspace)`` of the fused op, in JAX (time-major, as the op).

    The workspace (``kernels.workspace_names(form)``) is in loop time, rows in
    their own order: ``states`` (and ``cells``) ``(T + 1, B, H)`` from ``h0``,
    the activated ``gates`` ``(T, B, G H)``, the LSTM's activated cells or
    the GRU's ``r h_{t-1}``; :func:`jax_backward` reads it.
    """
    import jax
    import jax.numpy as jnp

    T, B = projected.shape[:2]
    H = hh.shape[0]
    act = _activation(activation)
    dtype = projected.dtype
    half = jnp.asarray(0.5, dtype)
    if form == "lstm":  # per column: sigmoid for i, f, o; tanh for g
        scale = jnp.concatenate(
            [jnp.full(2 * H, 0.5, dtype), jnp.ones(H, dtype), jnp.full(H, 0.5, dtype)]
        )
        offset = jnp.concatenate(
            [jnp.full(2 * H, 0.5, dtype), jnp.zeros(H, dtype), jnp.full(H, 0.5, dtype)]
        )
    time = _Time(T, reverse, lengths)
    xs = time.swap(projected)

    def step(carry, inp):
        xp, m = inp
        m = m[:, None]
        h = carry[0]
        if form == "rnn":
            new = (act(xp + h @ hh),)
            work = ()
        elif form == "lstm":
            # one tanh over the whole (B, 4H) tile, sigmoid(x) = (1 + tanh(x / 2)) / 2:
            # XLA vectorises that five times better than four activations of slices
            gates = jnp.tanh((xp + h @ hh) * scale) * scale + offset
            i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
            c = f * carry[1] + i * g
            y = act(c)
            new = (o * y, c)
            work = (gates, y)
        else:
            zr = jnp.tanh((xp[:, : 2 * H] + h @ hh[:, : 2 * H]) * half) * half + half
            z, r = zr[:, :H], zr[:, H:]
            rh = r * h
            n = act(xp[:, 2 * H :] + rh @ hh[:, 2 * H :])
            new = ((1 - z) * n + z * h,)
            work = (jnp.concatenate([zr, n], axis=1), rh)
        kept = tuple(jnp.where(m, n, o) for n, o in zip(new, carry, strict=True))
        shown = tuple(jnp.where(m, n, 0) for n in new)
        return kept, (shown, kept, work)

    carry0 = (h0, jnp.zeros_like(h0)) if form == "lstm" else (h0,)
    last, (shown, kept, work) = jax.lax.scan(step, carry0, (xs, time.masks(T, B)))
    seqs = tuple(time.swap(s) for s in shown)
    carried = tuple(
        jnp.concatenate([c0[None], k], axis=0) for c0, k in zip(carry0, kept, strict=True)
    )
    return (*seqs, last[0], *carried, *work)


def jax_backward(form, activation, reverse, hh, lengths, grads, workspace):
    """Backpropagation through time in JAX: ``(d projected, d hh, d h0)``.

    ``grads`` are the gradients of ``(out, [cell,] last)`` in real time (any
    may be ``None``), ``workspace`` what :func:`jax_forward` returned; the
    maths is that of :func:`trainkit.ops.kernels.backward`. Padded steps get
    no gradient and pass the carried ones through.
    """
    import jax
    import jax.numpy as jnp

    states = workspace[0]
    T, B, H = states.shape[0] - 1, states.shape[1], states.shape[2]
    dtype = states.dtype
    time = _Time(T, reverse, lengths)
    g_out, g_cell, g_last = (
        (grads[0], grads[1], grads[2]) if form == "lstm" else (grads[0], None, grads[1])
    )
    zeros = jnp.zeros((T, B, H), dtype)
    g_out = zeros if g_out is None else time.swap(g_out.astype(dtype))
    g_cell = zeros if g_cell is None else time.swap(g_cell.astype(dtype))
    dh_last = jnp.zeros((B, H), dtype) if g_last is None else g_last.astype(dtype)
    hh_t = hh.T

    def step(carry, inp):
        dh_in, dc_in = carry
        m, go, gc, h_prev, c_prev, work = inp
        m = m[:, None]
        dh = dh_in + jnp.where(m, go, 0)
        if form == "rnn":
            dz = dh * _derivative(activation, work[0])
            back, dc_prev = dz @ hh_t, dc_in
        elif form == "lstm":
            gates, y = work
            i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
            v = dc_in + jnp.where(m, gc, 0) + dh * o * _derivative(activation, y)
            dz = jnp.concatenate(
                [
                    v * g * i * (1 - i),
                    v * c_prev * f * (1 - f),
                    v * i * (1 - g * g),
                    dh * y * o * (1 - o),
                ],
                axis=1,
            )
            back, dc_prev = dz @ hh_t, jnp.where(m, v * f, dc_in)
        else:
            gates, rh = work
            z, r, n = (gates[:, k * H : (k + 1) * H] for k in range(3))
            dn = dh * (1 - z) * _derivative(activation, n)
            dzp = dh * (h_prev - n) * z * (1 - z)
            drh = dn @ hh_t[2 * H :]
            drp = drh * h_prev * r * (1 - r)
            dz = jnp.concatenate([dzp, drp, dn], axis=1)
            back = dh * z + drh * r + jnp.concatenate([dzp, drp], axis=1) @ hh_t[: 2 * H]
            dc_prev = dc_in
        dz = jnp.where(m, dz, 0)
        return (jnp.where(m, back, dh), dc_prev), dz

    c_prev = zeros
    if form == "rnn":
        work = (states[1:],)  # each step's new state: the activation's output
    elif form == "lstm":
        cells, gates, act_cells = workspace[1:]
        work, c_prev = (gates, act_cells), cells[:T]
    else:
        work = tuple(workspace[1:])
    (dh0, _), dz = jax.lax.scan(
        step,
        (dh_last, jnp.zeros((B, H), dtype)),
        (time.masks(T, B), g_out, g_cell, states[:T], c_prev, work),
        reverse=True,
    )
    if form == "gru":
        flat = dz.reshape(T * B, -1)
        dhh = jnp.concatenate(
            [
                states[:T].reshape(T * B, H).T @ flat[:, : 2 * H],
                workspace[2].reshape(T * B, H).T @ flat[:, 2 * H :],
            ],
            axis=1,
        )
    else:
        dhh = states[:T].reshape(T * B, H).T @ dz.reshape(T * B, -1)
    return time.swap(dz), dhh, dh0


def _register():
    from pytensor.link.jax.dispatch import jax_funcify

    from .reference import register_jax

    register_jax()

    @jax_funcify.register(FusedRecurrent)
    def jax_funcify_fused(op, node=None, **kwargs):
        dtypes = [o.type.dtype for o in node.outputs]

        def fused_recurrent(projected, hh, h0, lengths=None):
            results = jax_forward(op.form, op.activation, op.reverse, projected, hh, h0, lengths)
            return tuple(r.astype(d) for r, d in zip(results, dtypes, strict=True))

        return fused_recurrent

    @jax_funcify.register(FusedRecurrentGrad)
    def jax_funcify_fused_grad(op, node=None, **kwargs):
        dtypes = [o.type.dtype for o in node.outputs]

        def fused_recurrent_grad(*inputs):
            lengths, grads, work = op._split(inputs)
            results = jax_backward(
                op.form, op.activation, op.reverse, inputs[1], lengths, grads, work
            )
            return tuple(r.astype(d) for r, d in zip(results, dtypes, strict=True))

        return fused_recurrent_grad


class _AfterImport(importlib.abc.MetaPathFinder):
    """Registers the JAX dispatch right after PyTensor's JAX backend is imported."""

    def find_spec(self, name, path, target=None):
        if name != _DISPATCH:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_then_register(module):
                exec_module(module)
                _register()

            spec.loader.exec_module = exec_then_register
        return spec


def install():
    """Register now if PyTensor's JAX backend is loaded, else when it gets imported."""
    if _DISPATCH in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
