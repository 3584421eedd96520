r"""JAX implementations of the fused recurrent ops (``jax.lax.scan``), for ``mode="JAX"``.

The forward op runs :func:`jax_forward`, a ``lax.scan`` over loop time whose
length comes from the traced array's static shape, so no sequence length
needs declaring. Padded steps are masked (state kept, output zero); reverse
runs gather each example's steps with ``take_along_axis`` (the index map
:math:`t \mapsto L_b - 1 - t` is its own inverse). The backward op is
``jax.vjp`` of the same function; the forward op's workspace outputs are
empty placeholders under JAX.

Registration waits for PyTensor's JAX backend to be imported (a one-shot
import hook), so importing trainkit does not import JAX.
"""

import importlib.abc
import importlib.util
import sys

from .recurrent import FusedRecurrent, FusedRecurrentGrad, _outputs

_DISPATCH = "pytensor.link.jax.dispatch"


def jax_forward(form, activation, reverse, projected, hh, h0, lengths=None):
    """``(out, [cell,] last)`` of the fused op, in JAX (time-major, as the op)."""
    import jax
    import jax.numpy as jnp

    T = projected.shape[0]
    H = hh.shape[0]
    act = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "linear": lambda v: v}[
        activation
    ]
    steps = jnp.arange(T)
    if lengths is None:
        valid = None
        xs = projected[::-1] if reverse else projected
    else:
        valid = steps[:, None] < lengths[None, :]  # (T, B), loop time
        if reverse:
            tidx = jnp.where(valid, lengths[None, :] - 1 - steps[:, None], steps[:, None])
            xs = jnp.take_along_axis(projected, tidx[:, :, None], axis=0)
        else:
            xs = projected

    def keep(m, new, old):
        return new if m is None else jnp.where(m[:, None], new, old)

    def step(carry, inp):
        xp, m = inp
        h = carry[0]
        if form == "rnn":
            new = (act(xp + h @ hh),)
        elif form == "lstm":
            z = xp + h @ hh
            i, f, o = (jax.nn.sigmoid(z[:, k * H : (k + 1) * H]) for k in (0, 1, 3))
            c = f * carry[1] + i * jnp.tanh(z[:, 2 * H : 3 * H])
            new = (o * act(c), c)
        else:
            zr = jax.nn.sigmoid(xp[:, : 2 * H] + h @ hh[:, : 2 * H])
            z, r = zr[:, :H], zr[:, H:]
            cand = act(xp[:, 2 * H :] + (r * h) @ hh[:, 2 * H :])
            new = ((1 - z) * cand + z * h,)
        kept = tuple(keep(m, n, o) for n, o in zip(new, carry, strict=True))
        shown = tuple(n if m is None else jnp.where(m[:, None], n, 0) for n in new)
        return kept, shown

    carry0 = (h0, jnp.zeros_like(h0)) if form == "lstm" else (h0,)
    masks = jnp.zeros((T, 0), bool) if valid is None else valid
    last, seqs = jax.lax.scan(
        lambda c, inp: step(c, (inp[0], None if valid is None else inp[1])), carry0, (xs, masks)
    )
    if lengths is None:
        seqs = tuple(s[::-1] for s in seqs) if reverse else seqs
    elif reverse:
        seqs = tuple(jnp.take_along_axis(s, tidx[:, :, None], axis=0) for s in seqs)
    return (*seqs, last[0])


def _register():
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    from .reference import register_jax

    register_jax()

    @jax_funcify.register(FusedRecurrent)
    def jax_funcify_fused(op, node=None, **kwargs):
        work = [(o.type.ndim, o.type.dtype) for o in node.outputs[len(_outputs(op.form)) :]]

        def fused_recurrent(projected, hh, h0, lengths=None):
            results = jax_forward(op.form, op.activation, op.reverse, projected, hh, h0, lengths)
            return (*results, *(jnp.zeros((0,) * nd, dt) for nd, dt in work))

        return fused_recurrent

    @jax_funcify.register(FusedRecurrentGrad)
    def jax_funcify_fused_grad(op, node=None, **kwargs):
        def fused_recurrent_grad(*inputs):
            projected, hh, h0 = inputs[:3]
            lengths, grads, _ = op._split(inputs)

            def f(p, w, h):
                return jax_forward(op.form, op.activation, op.reverse, p, w, h, lengths)

            primals, vjp = jax.vjp(f, projected, hh, h0)
            cot = tuple(
                jnp.zeros_like(p) if g is None else g.astype(p.dtype)
                for p, g in zip(primals, grads, strict=True)
            )
            return vjp(cot)

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
