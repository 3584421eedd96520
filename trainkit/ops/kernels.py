r"""NumPy kernels of the fused recurrent ops: one whole time loop per call.

Every array is time-major inside the kernels: ``projected`` is ``(T, B, G H)``
with ``G`` gate blocks (1 for ``rnn``, 3 for ``gru``, 4 for ``lstm``). The loop
runs in *loop time* :math:`s = 0, \dots, T-1`; example :math:`b` is active at
step :math:`s` while :math:`s < L_b` (its length) and then reads the input at
real time :math:`t_b(s) = s` (forward) or :math:`L_b - 1 - s` (reverse).
Rows are sorted by decreasing length so that the active rows are a prefix
``[:n_s]``: each step is one ``h @ W_hh`` GEMM on that prefix plus whole-tile
NumPy ufuncs (SIMD ``tanh``), no per-element Python or scalar ``libm`` calls.
The LSTM's and GRU's remaining gate arithmetic (no transcendentals) runs as a few
compiled Numba loops per step (:func:`_lstm_cell_step`, :func:`_lstm_back_step`, ...
``_gru_*``), which replace some fifteen small ufunc calls.

The forward pass saves a *workspace* in loop time and sorted row order
(states, cells, activated gates); the backward pass (BPTT) reads it, writes
:math:`\partial\ell/\partial z_s` for every step into one ``(T, B, G H)``
buffer, and forms :math:`\partial\ell/\partial W_{hh} = \sum_s h_{s-1}^\top
\partial z_s` as one GEMM after the loop; :math:`\partial\ell/\partial z` *is*
the gradient of ``projected``.

Activations act in place and are differentiated from their *output* ``y``:
``tanh`` :math:`1-y^2`, ``sigmoid`` :math:`y(1-y)`, ``relu`` :math:`[y>0]`,
``linear`` :math:`1`. The logistic function is computed as
:math:`\sigma(x) = (1 + \tanh(x/2))/2`, which vectorises.
"""

import numpy as np
from numba import njit

__all__ = ["ACTIVATIONS", "BLOCKS", "forward", "backward", "workspace_names"]

#: number of gate blocks per form
BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}

#: activations the kernels implement (elementwise, derivative from the output)
ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")


def workspace_names(form):
    """Names of the workspace arrays that ``forward`` returns after its outputs."""
    return {
        "rnn": ("states",),
        "lstm": ("states", "cells", "gates", "act_cells"),
        "gru": ("states", "gates", "reset_states"),
    }[form]


def activate(name, x):
    """Apply activation ``name`` to ``x`` in place."""
    if name == "tanh":
        np.tanh(x, out=x)
    elif name == "sigmoid":
        x *= 0.5
        np.tanh(x, out=x)
        x *= 0.5
        x += 0.5
    elif name == "relu":
        np.maximum(x, 0, out=x)
    elif name != "linear":
        raise ValueError(f"activation: {name!r} is not supported by the fused ops")


def derivative(name, y, out):
    """Write :math:`f'` of activation ``name``, given its output ``y``, into ``out``."""
    if name == "tanh":
        np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
    elif name == "sigmoid":
        np.subtract(1, y, out=out)
        out *= y
    elif name == "relu":
        np.greater(y, 0, out=out)
    else:
        out.fill(1)
    return out


class Plan:
    """Row order and time indices of one call, from ``lengths`` (see module doc)."""

    def __init__(self, lengths, T, B, reverse):
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths: expected shape ({B},), got {lengths.shape}")
        if B and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(
                f"lengths: every length must lie in 0..{T} (the padded sequence length); "
                f"got values from {lengths.min()} to {lengths.max()}"
            )
        self.T, self.B, self.reverse = T, B, reverse
        self.uniform = bool(np.all(lengths == T))
        if self.uniform:
            self.perm = None
            self.counts = np.full(T, B)
            self.lengths = np.full(B, T)
            return
        self.perm = np.argsort(-lengths, kind="stable")
        self.lengths = lengths[self.perm].astype(np.int64)
        steps = np.arange(T)
        self.counts = (self.lengths[None, :] > steps[:, None]).sum(axis=1)
        self.valid = self.lengths[None, :] > steps[:, None]  # (T, B) loop time, sorted rows
        if reverse:
            tidx = np.where(self.valid, self.lengths[None, :] - 1 - steps[:, None], steps[:, None])
        else:
            tidx = np.broadcast_to(steps[:, None], (T, B))
        self.tidx = np.ascontiguousarray(tidx)
        self.rows = np.broadcast_to(self.perm[None, :], (T, B))

    def time(self, s):
        return self.T - 1 - s if self.reverse else s

    def take(self, seq, s, n):
        """Rows ``[:n]`` of loop step ``s`` of a real-time ``(T, B, ...)`` array."""
        if self.uniform:
            return seq[self.time(s)]
        return seq[self.tidx[s, :n], self.perm[:n]]

    def sort(self, rows):
        """A ``(B, ...)`` array in sorted row order."""
        return rows if self.uniform else rows[self.perm]

    def unsort(self, rows):
        if self.uniform:
            return rows
        out = np.empty_like(rows)
        out[self.perm] = rows
        return out

    def to_real(self, seq):
        """Loop-time, sorted ``(T, B, ...)`` → real time, original rows, zeros where padded.

        Always a new array: an op's outputs must not share memory (the
        workspace holds ``seq``), or an in-place op downstream on one output
        (Numba's rewrites make those) corrupts the other.
        """
        if self.uniform:
            return np.array(seq[::-1] if self.reverse else seq, order="C", copy=True)
        out = np.zeros_like(seq)
        out[self.tidx[self.valid], self.rows[self.valid]] = seq[self.valid]
        return out

    def last(self, states):
        """State after each example's last real step, from loop-time ``(T+1, B, H)`` states."""
        if self.uniform:
            return states[self.T].copy()
        return self.unsort(states[self.lengths, np.arange(self.B)])


#: activation → code of its derivative in :func:`_lstm_back_step`
_DERIVATIVE_CODES = {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3}


# The loops below run over 1-D row views and per-gate slices of them: LLVM
# vectorises those (not the 2-D indexing); no ``fastmath``, so each value is
# rounded as NumPy would round it.


@njit(cache=True, nogil=True, inline="always")
def _derivative_at(code, y, one, zero):  # pragma: no cover - compiled
    """:math:`f'` at an activation output ``y`` (``code``: :data:`_DERIVATIVE_CODES`)."""
    if code == 0:
        return one - y * y
    if code == 1:
        return (one - y) * y
    if code == 2:
        return one if y > zero else zero
    return one


@njit(cache=True, nogil=True)
def _add_scale(a, p, scale):  # pragma: no cover - compiled
    """``a = (a + p) * scale`` (per column), in place: the gate pre-activations."""
    for r in range(a.shape[0]):
        ar, pr = a[r], p[r]
        for j in range(ar.shape[0]):
            ar[j] = (ar[j] + pr[j]) * scale[j]


@njit(cache=True, nogil=True)
def _lstm_cell_step(a, c_prev, c, tc, half):  # pragma: no cover - compiled
    """From ``a = tanh`` of the scaled gates: the gates in place, ``c`` and a copy in ``tc``."""
    n, H = c.shape
    for r in range(n):
        ar, cp, cr, tr = a[r], c_prev[r], c[r], tc[r]
        ai, af, ag, ao = ar[:H], ar[H : 2 * H], ar[2 * H : 3 * H], ar[3 * H :]
        for j in range(H):
            i = ai[j] * half + half
            f = af[j] * half + half
            o = ao[j] * half + half
            ai[j] = i
            af[j] = f
            ao[j] = o
            v = f * cp[j] + i * ag[j]
            cr[j] = v
            tr[j] = v


@njit(cache=True, nogil=True)
def _lstm_back_step(a, tc, c_prev, d_h, dc, g_cell, has_g_cell, code, one, d):  # pragma: no cover
    """One BPTT step of the LSTM cell: ``d`` (gate pre-activations) and ``dc`` in place.

    ``code`` is the cell activation's derivative (:data:`_DERIVATIVE_CODES`).
    """
    n, H = dc.shape
    zero = one - one
    for r in range(n):
        ar, dr, tr, cp, hr, cr, gr = a[r], d[r], tc[r], c_prev[r], d_h[r], dc[r], g_cell[r]
        ai, af, ag, ao = ar[:H], ar[H : 2 * H], ar[2 * H : 3 * H], ar[3 * H :]
        di, df, dg, do = dr[:H], dr[H : 2 * H], dr[2 * H : 3 * H], dr[3 * H :]
        for j in range(H):
            y = tr[j]
            dy = _derivative_at(code, y, one, zero)
            i, f, g, o = ai[j], af[j], ag[j], ao[j]
            dhj = hr[j]
            v = cr[j] + dy * o * dhj
            if has_g_cell:
                v += gr[j]
            di[j] = (one - i) * i * g * v
            df[j] = (one - f) * f * cp[j] * v
            dg[j] = (one - g * g) * i * v
            do[j] = (one - o) * o * y * dhj
            cr[j] = v * f


@njit(cache=True, nogil=True)
def _gru_gates_step(a, hp, rh, half):  # pragma: no cover - compiled
    """From ``a[:, :2H] = tanh`` of the halved ``z, r`` pre-activations: ``z, r`` in place, ``r h``."""
    n, H = hp.shape
    for r in range(n):
        ar, hr, qr = a[r], hp[r], rh[r]
        az, ax = ar[:H], ar[H : 2 * H]
        for j in range(H):
            az[j] = az[j] * half + half
        for j in range(H):
            v = ax[j] * half + half
            ax[j] = v
            qr[j] = v * hr[j]


@njit(cache=True, nogil=True)
def _gru_state_step(a, hp, h):  # pragma: no cover - compiled
    """``h = n + z (h_prev - n)``."""
    n, H = hp.shape
    for r in range(n):
        ar, pr, hr = a[r], hp[r], h[r]
        az, an = ar[:H], ar[2 * H :]
        for j in range(H):
            hr[j] = (pr[j] - an[j]) * az[j] + an[j]


@njit(cache=True, nogil=True)
def _gru_back_first(a, hp, d_h, code, one, d):  # pragma: no cover - compiled
    """``d`` of the ``z`` and ``n`` pre-activations (``code``: :data:`_DERIVATIVE_CODES`)."""
    n, H = hp.shape
    zero = one - one
    for r in range(n):
        ar, dr, pr, hr = a[r], d[r], hp[r], d_h[r]
        az, an = ar[:H], ar[2 * H :]
        dz, dn = dr[:H], dr[2 * H :]
        for j in range(H):
            y = an[j]
            dy = _derivative_at(code, y, one, zero)
            z = az[j]
            dn[j] = dy * ((one - z) * hr[j])
            dz[j] = (pr[j] - y) * hr[j] * ((one - z) * z)


@njit(cache=True, nogil=True)
def _gru_back_second(a, hp, d_h, drh, one, d, carry):  # pragma: no cover - compiled
    """``d`` of the ``r`` pre-activations and ``carry = d_h z + drh r``."""
    n, H = hp.shape
    for r in range(n):
        ar, dr, pr, hr, qr, cr = a[r], d[r], hp[r], d_h[r], drh[r], carry[r]
        az, ax = ar[:H], ar[H : 2 * H]
        dx = dr[H : 2 * H]
        for j in range(H):
            x = ax[j]
            dx[j] = qr[j] * pr[j] * ((one - x) * x)
            cr[j] = hr[j] * az[j] + qr[j] * x


def _sigmoid_blocks(blocks, H, dtype):
    """Per-column scale and offset turning ``tanh(scale * z)`` into the gate activations."""
    scale = np.full(blocks * H, 0.5, dtype)
    offset = np.full(blocks * H, 0.5, dtype)
    if blocks == 4:  # lstm i, f, g, o: g is tanh
        scale[2 * H : 3 * H] = 1
        offset[2 * H : 3 * H] = 0
    return scale, offset


def forward(form, activation, reverse, projected, hh, h0, lengths):
    """Run the recurrence; return ``(out, [cell,] last, *workspace)``.

    ``out``/``cell`` are ``(T, B, H)`` in real time with zeros at padded steps,
    ``last`` is ``(B, H)``; the workspace is listed by :func:`workspace_names`.
    """
    T, B, GH = projected.shape
    H = hh.shape[0]
    dtype = projected.dtype
    plan = Plan(lengths, T, B, reverse)
    states = np.zeros((T + 1, B, H), dtype)
    states[0] = plan.sort(h0)
    if form == "rnn":
        for s in range(T):
            n = plan.counts[s]
            h = states[s + 1, :n]
            np.dot(states[s, :n], hh, out=h)
            h += plan.take(projected, s, n)
            activate(activation, h)
        return plan.to_real(states[1:]), plan.last(states), states
    gates = np.zeros((T, B, GH), dtype)
    if form == "lstm":
        cells = np.zeros((T + 1, B, H), dtype)
        act_cells = np.zeros((T, B, H), dtype)
        scale, _ = _sigmoid_blocks(4, H, dtype)
        half = dtype.type(0.5)
        for s in range(T):
            n = plan.counts[s]
            a = gates[s, :n]
            np.dot(states[s, :n], hh, out=a)
            _add_scale(a, plan.take(projected, s, n), scale)
            np.tanh(a, out=a)
            tc = act_cells[s, :n]
            _lstm_cell_step(a, cells[s, :n], cells[s + 1, :n], tc, half)
            activate(activation, tc)
            np.multiply(a[:, 3 * H :], tc, out=states[s + 1, :n])
        return (
            plan.to_real(states[1:]),
            plan.to_real(cells[1:]),
            plan.last(states),
            states,
            cells,
            gates,
            act_cells,
        )
    # gru: blocks z, r, n
    reset_states = np.zeros((T, B, H), dtype)
    tmp = np.empty((B, 2 * H), dtype)
    tmp_n = np.empty((B, H), dtype)
    hh_zr, hh_n = np.ascontiguousarray(hh[:, : 2 * H]), np.ascontiguousarray(hh[:, 2 * H :])
    scale, half = np.full(2 * H, 0.5, dtype), dtype.type(0.5)
    for s in range(T):
        m = plan.counts[s]
        hp, a, xp = states[s, :m], gates[s, :m], plan.take(projected, s, m)
        zr, cand = a[:, : 2 * H], a[:, 2 * H :]
        t = tmp[:m]
        np.dot(hp, hh_zr, out=t)
        _add_scale(t, xp[:, : 2 * H], scale)  # sigmoid(x) = (1 + tanh(x / 2)) / 2
        np.tanh(t, out=zr)
        rh = reset_states[s, :m]
        _gru_gates_step(a, hp, rh, half)
        t = tmp_n[:m]
        np.dot(rh, hh_n, out=t)
        np.add(xp[:, 2 * H :], t, out=cand)
        activate(activation, cand)
        _gru_state_step(a, hp, states[s + 1, :m])  # h = n + z (h_prev - n)
    return plan.to_real(states[1:]), plan.last(states), states, gates, reset_states


def backward(form, activation, reverse, hh, lengths, grads, workspace):
    """Backpropagation through time: ``(d projected, d hh, d h0)``.

    ``grads`` are the gradients of ``(out, [cell,] last)`` in real time (any
    may be ``None`` for zero); ``workspace`` is what :func:`forward` returned.
    """
    states = workspace[0]
    T1, B, H = states.shape
    T, dtype = T1 - 1, states.dtype
    GH = hh.shape[1]
    plan = Plan(lengths, T, B, reverse)
    g_out, g_cell, g_last = (
        (grads[0], grads[1], grads[2]) if form == "lstm" else (grads[0], None, grads[1])
    )
    dz = np.zeros((T, B, GH), dtype)
    carry = np.zeros((B, H), dtype) if g_last is None else plan.sort(g_last).astype(dtype)
    dh = np.empty((B, H), dtype)
    hh_t = np.ascontiguousarray(hh.T)

    def incoming(s, n):
        np.copyto(dh[:n], carry[:n])
        if g_out is not None:
            dh[:n] += plan.take(g_out, s, n)
        return dh[:n]

    if form == "rnn":
        for s in range(T - 1, -1, -1):
            n = plan.counts[s]
            d = dz[s, :n]
            derivative(activation, states[s + 1, :n], d)
            d *= incoming(s, n)
            np.dot(d, hh_t, out=carry[:n])
        dhh = np.dot(states[:T].reshape(T * B, H).T, dz.reshape(T * B, GH))
    elif form == "lstm":
        _, cells, gates, act_cells = workspace
        carry_c = np.zeros((B, H), dtype)
        code, one = _DERIVATIVE_CODES[activation], dtype.type(1)
        for s in range(T - 1, -1, -1):
            n = plan.counts[s]
            d_h = incoming(s, n)
            dc = carry_c[:n]
            gc = dc if g_cell is None else plan.take(g_cell, s, n)
            d = dz[s, :n]
            _lstm_back_step(
                gates[s, :n],
                act_cells[s, :n],
                cells[s, :n],
                d_h,
                dc,
                gc,
                g_cell is not None,
                code,
                one,
                d,
            )
            np.dot(d, hh_t, out=carry[:n])
        dhh = np.dot(states[:T].reshape(T * B, H).T, dz.reshape(T * B, GH))
    else:
        _, gates, reset_states = workspace
        hh_zr_t = np.ascontiguousarray(hh[:, : 2 * H].T)
        hh_n_t = np.ascontiguousarray(hh[:, 2 * H :].T)
        drh = np.empty((B, H), dtype)
        code, one = _DERIVATIVE_CODES[activation], dtype.type(1)
        tmp_c = np.empty((B, H), dtype)
        for s in range(T - 1, -1, -1):
            n = plan.counts[s]
            d_h = incoming(s, n)
            a, d, hp = gates[s, :n], dz[s, :n], states[s, :n]
            # dn = dh (1 - z) f'(n), dz = dh (h_prev - n) z (1 - z)
            _gru_back_first(a, hp, d_h, code, one, d)
            np.dot(d[:, 2 * H :], hh_n_t, out=drh[:n])
            c = carry[:n]
            # dr = drh h_prev r (1 - r); carry = dh z + drh r + d[:, :2H] hh_zr^T
            _gru_back_second(a, hp, d_h, drh[:n], one, d, c)
            np.dot(d[:, : 2 * H], hh_zr_t, out=tmp_c[:n])
            c += tmp_c[:n]
        flat = dz.reshape(T * B, GH)
        dhh = np.concatenate(
            [
                np.dot(states[:T].reshape(T * B, H).T, flat[:, : 2 * H]),
                np.dot(reset_states.reshape(T * B, H).T, flat[:, 2 * H :]),
            ],
            axis=1,
        )
    # dz is this call's own array: in real time already, it need not be copied
    d_projected = dz if plan.uniform and not reverse else plan.to_real(dz)
    return d_projected, dhh, plan.unsort(carry)
