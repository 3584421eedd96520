r"""Recurrent layers (``rnn``, ``lstm``, ``gru``) on batch-major sequences.

Input and output are ``(batch, time, features)``. The input projection
:math:`x_t W + b` is computed for all time steps at once, outside the loop;
``pytensor.scan`` runs only the recurrence. Initial states are zero. Each
layer's ``<name>:out`` is its state sequence ``(batch, time, size)`` and is
marked *recurrent* (the default target of ``recurrent_norm`` and
``recurrent_state``). With ``return_sequences=False`` the layer also
outputs ``<name>:last``, the state at the last time step, and passes that
on to the next layer (sequence classification).
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt

from . import activations
from .base import Layer, glorot, orthogonal, register_form

__all__ = ["RNN", "LSTM", "GRU"]


def _scan_mode():
    """The mode of scan's inner function: FAST_COMPILE when that is the global mode.

    ``scan(mode=None)`` rewrites its inner graph fully (fusing elementwise
    ops) even under ``mode=FAST_COMPILE``, which makes the Python
    implementations that the test suite runs several times slower; every
    other mode (Numba, C, JAX) compiles the loop with the outer function's.
    """
    return "FAST_COMPILE" if pytensor.config.mode == "FAST_COMPILE" else None


class _Recurrent(Layer):
    recurrent = True
    default_activation = "tanh"
    options = {"return_sequences": True}
    #: number of gate blocks in the weight matrices
    blocks = 1

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        flag = self.config_options["return_sequences"]
        if not isinstance(flag, bool):
            raise TypeError(f"layer {name!r}: return_sequences must be True or False, got {flag!r}")

    def init_params(self, rng):
        self.add_param("xh", glorot(rng, self.n_in, self.size * self.blocks, self.dtype))
        hh = [orthogonal(rng, self.size, self.dtype) for _ in range(self.blocks)]
        self.add_param("hh", np.concatenate(hh, axis=1))
        self.add_param("b", self.initial_bias())

    def initial_bias(self):
        return np.zeros(self.size * self.blocks, self.dtype)

    def p(self, short):
        return self.params[f"{self.name}.{short}"]

    def output_ndim(self, input_ndim):
        return 3 if self.config_options["return_sequences"] else 2

    def build(self, x):
        if x.ndim != 3:
            raise ValueError(
                f"layer {self.name!r}: a {self.form} layer needs (batch, time, features) input; "
                f"the layer before it gives {x.ndim} dimensions (return_sequences=False?)"
            )
        projected = (x @ self.p("xh") + self.p("b")).dimshuffle(1, 0, 2)
        zeros = pt.zeros((x.shape[0], self.size), dtype=self.dtype)
        states = self.scan(projected, zeros)
        outputs = OrderedDict()
        for short, seq in states.items():
            outputs[f"{self.name}:{short}"] = seq.dimshuffle(1, 0, 2)
        main = outputs[f"{self.name}:out"]
        if not self.config_options["return_sequences"]:
            main = main[:, -1]
            outputs[f"{self.name}:last"] = main
        return outputs, main


@register_form("rnn")
class RNN(_Recurrent):
    r"""Simple (Elman) recurrent layer.

    .. math:: h_t = f(x_t W_{xh} + h_{t-1} W_{hh} + b)

    Parameters ``<name>.xh`` (Glorot uniform), ``<name>.hh`` (orthogonal),
    ``<name>.b`` (zeros); output ``<name>:out``. Default activation tanh.
    """

    def scan(self, projected, h0):
        act = activations.get(self.activation)
        hh = self.p("hh")

        def step(xp, h):
            return act(xp + h @ hh)

        out = pytensor.scan(
            step, sequences=[projected], outputs_info=[h0], return_updates=False, mode=_scan_mode()
        )
        return OrderedDict(out=out)


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

    def scan(self, projected, h0):
        act = activations.get(self.activation)
        hh, n = self.p("hh"), self.size

        def step(xp, h, c):
            z = xp + h @ hh
            i, f, g, o = (z[:, k * n : (k + 1) * n] for k in range(4))
            c_new = pt.sigmoid(f) * c + pt.sigmoid(i) * pt.tanh(g)
            return pt.sigmoid(o) * act(c_new), c_new

        out, cell = pytensor.scan(
            step,
            sequences=[projected],
            outputs_info=[h0, h0],
            return_updates=False,
            mode=_scan_mode(),
        )
        return OrderedDict(out=out, cell=cell)


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

    def scan(self, projected, h0):
        act = activations.get(self.activation)
        hh, n = self.p("hh"), self.size
        hh_zr, hh_n = hh[:, : 2 * n], hh[:, 2 * n :]

        def step(xp, h):
            zr = pt.sigmoid(xp[:, : 2 * n] + h @ hh_zr)
            z, r = zr[:, :n], zr[:, n:]
            cand = act(xp[:, 2 * n :] + (r * h) @ hh_n)
            return (1 - z) * cand + z * h

        out = pytensor.scan(
            step, sequences=[projected], outputs_info=[h0], return_updates=False, mode=_scan_mode()
        )
        return OrderedDict(out=out)
