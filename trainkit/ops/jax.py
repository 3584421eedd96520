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
    import jax.numpy as jnp

    return jnp.ones_like(y)


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
    sig = jax.nn.sigmoid
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
            z = xp + h @ hh
            gates = jnp.concatenate(
                [sig(z[:, : 2 * H]), jnp.tanh(z[:, 2 * H : 3 * H]), sig(z[:, 3 * H :])], axis=1
            )
            i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
            c = f * carry[1] + i * g
            y = act(c)
            new = (o * y, c)
            work = (gates, y)
        else:
            zr = sig(xp[:, : 2 * H] + h @ hh[:, : 2 * H])
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
    maths is that of :func:`trainkit.ops.kernels.backward`. Everything that
    does not depend on the carried gradients (the gates' derivatives, the
    padding) is computed for all steps at once before the loop, so the loop
    body is one matrix product and a few products; a padded step has zero
    coefficients and passes the carried gradients through.
    """
    import jax
    import jax.numpy as jnp

    states = workspace[0]
    T, B, H = states.shape[0] - 1, states.shape[1], states.shape[2]
    dtype = states.dtype
    time = _Time(T, reverse, lengths)
    padded = lengths is not None
    m = time.masks(T, B)[:, :, None].astype(dtype) if padded else 1
    g_out, g_cell, g_last = (
        (grads[0], grads[1], grads[2]) if form == "lstm" else (grads[0], None, grads[1])
    )
    zeros = jnp.zeros((T, B, H), dtype)

    def incoming(g):
        return zeros if g is None else time.swap(g.astype(dtype)) * m

    go, dh_last = incoming(g_out), jnp.zeros((B, H), dtype)
    if g_last is not None:
        dh_last = g_last.astype(dtype)
    keep = (1 - m) * jnp.ones((T, B, H), dtype) if padded else zeros  # pass-through
    hh_t = hh.T
    h_prev = states[:T]

    if form == "rnn":
        coef = (_derivative(activation, states[1:]) * m,)

        def step(carry, inp):
            g, (d,), k = inp
            dh = carry[0] + g
            dz = dh * d
            return (dz @ hh_t + dh * k,), dz

        carry0 = (dh_last,)
    elif form == "lstm":
        cells, gates, y = workspace[1:]
        i, f, g, o = (gates[..., k * H : (k + 1) * H] for k in range(4))
        c_prev = cells[:T]
        gates_d = jnp.concatenate(
            [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), y * o * (1 - o)], axis=-1
        )
        coef = (gates_d * m, o * _derivative(activation, y) * m, f * m + keep, incoming(g_cell))

        def step(carry, inp):
            g, (k4, a, f_, gc), k = inp
            dh = carry[0] + g
            v = carry[1] + gc + dh * a
            dz = jnp.concatenate([v, v, v, dh], axis=1) * k4
            return (dz @ hh_t + dh * k, v * f_), dz

        carry0 = (dh_last, jnp.zeros((B, H), dtype))
    else:
        gates, _ = workspace[1:]
        z, r, n = (gates[..., k * H : (k + 1) * H] for k in range(3))
        coef = (
            (1 - z) * _derivative(activation, n) * m,
            (h_prev - n) * z * (1 - z) * m,
            h_prev * r * (1 - r) * m,
            z * m + keep,
            r * m,
        )
        hh_zr_t, hh_n_t = hh_t[: 2 * H], hh_t[2 * H :]

        def step(carry, inp):
            g, (kn, kz, kr, z_, r_), _ = inp
            dh = carry[0] + g
            dn, dzp = dh * kn, dh * kz
            drh = dn @ hh_n_t
            drp = drh * kr
            back = dh * z_ + drh * r_ + jnp.concatenate([dzp, drp], axis=1) @ hh_zr_t
            return (back,), jnp.concatenate([dzp, drp, dn], axis=1)

        carry0 = (dh_last,)
    (dh0, *_), dz = jax.lax.scan(step, carry0, (go, coef, keep), reverse=True)
    if form == "gru":
        flat = dz.reshape(T * B, -1)
        dhh = jnp.concatenate(
            [
                h_prev.reshape(T * B, H).T @ flat[:, : 2 * H],
                workspace[2].reshape(T * B, H).T @ flat[:, 2 * H :],
            ],
            axis=1,
        )
    else:
        dhh = h_prev.reshape(T * B, H).T @ dz.reshape(T * B, -1)
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
