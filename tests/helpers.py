"""Tiny hand-written PyTensor graphs for the regularizer tests, with numpy twins.

Each builder returns a :class:`regularizers.Graph` plus the parameter values
as numpy arrays, so a test can recompute what the graph computes without
going through the module under test.
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt

import regularizers

__all__ = ["QUIET", "shared", "feedforward", "ff_forward", "linear", "recurrent", "rnn_forward"]

#: trainer options that keep a test's output clean
QUIET = dict(progress=False, log=False)


def shared(value, name, dtype="float32"):
    """A named shared variable holding ``value`` as ``dtype``."""
    return pytensor.shared(np.asarray(value, dtype=dtype), name=name)


def feedforward(seed=0, sizes=(3, 4, 5, 2)):
    """A tanh MLP ``in -> hid1 -> hid2 -> out`` (linear output).

    Outputs: ``in:out``, ``hid1:pre``, ``hid1:out``, ``hid2:pre``,
    ``hid2:out``, ``out:out``; parameters ``hid1.w``, ``hid1.b``, ``hid2.w``,
    ``hid2.b``, ``out.w``, ``out.b``; ``hid1:out`` and ``hid2:out`` are hidden.

    Returns
    -------
    (Graph, dict of str -> ndarray)
        The graph and a copy of each parameter's value.
    """
    rng = np.random.default_rng(seed)
    x = pt.matrix("x")
    values = OrderedDict()
    params = OrderedDict()
    layers = ["hid1", "hid2", "out"]
    for layer, n_in, n_out in zip(layers, sizes[:-1], sizes[1:], strict=True):
        for suffix, shape in (("w", (n_in, n_out)), ("b", (n_out,))):
            name = f"{layer}.{suffix}"
            values[name] = rng.normal(0.0, 0.7, size=shape).astype("float32")
            params[name] = shared(values[name], name)
    outputs = OrderedDict([("in:out", x)])
    h = x
    for layer in layers:
        pre = h @ params[f"{layer}.w"] + params[f"{layer}.b"]
        if layer == "out":
            outputs["out:out"] = pre
        else:
            h = pt.tanh(pre)
            outputs[f"{layer}:pre"] = pre
            outputs[f"{layer}:out"] = h
    graph = regularizers.Graph(outputs, params, inputs={"x": x}, hidden=["hid1:out", "hid2:out"])
    return graph, values


def ff_forward(values, x, hid1=None):
    """numpy twin of :func:`feedforward`; ``hid1`` replaces ``hid1:out`` if given."""
    x = np.asarray(x, dtype="float64")
    h1 = np.tanh(x @ values["hid1.w"] + values["hid1.b"]) if hid1 is None else hid1
    h2 = np.tanh(h1 @ values["hid2.w"] + values["hid2.b"])
    out = h2 @ values["out.w"] + values["out.b"]
    return {"hid1:out": h1, "hid2:out": h2, "out:out": out}


def recurrent(seed=0, features=2, units=3, n_out=2):
    """A tanh RNN over ``(batch, time, features)`` built with ``scan``, plus a linear readout.

    ``h_t = tanh(x_t W + h_{t-1} U + b)``, ``h_0 = 0``. Outputs ``in:out``,
    ``rnn:out`` (``(batch, time, units)``, hidden and recurrent) and
    ``out:out``; parameters ``rnn.xh``, ``rnn.hh``, ``rnn.b``, ``out.w``.
    """
    rng = np.random.default_rng(seed)
    shapes = OrderedDict(
        [
            ("rnn.xh", (features, units)),
            ("rnn.hh", (units, units)),
            ("rnn.b", (units,)),
            ("out.w", (units, n_out)),
        ]
    )
    values = OrderedDict(
        (k, rng.normal(0.0, 0.6, size=s).astype("float32")) for k, s in shapes.items()
    )
    params = OrderedDict((k, shared(v, k)) for k, v in values.items())
    x = pt.tensor3("x")

    def step(x_t, h_prev):
        return pt.tanh(x_t @ params["rnn.xh"] + h_prev @ params["rnn.hh"] + params["rnn.b"])

    h0 = pt.zeros((x.shape[0], units), dtype=x.dtype)
    states = pytensor.scan(
        step, sequences=[x.dimshuffle(1, 0, 2)], outputs_info=[h0], return_updates=False
    )
    h = states.dimshuffle(1, 0, 2)
    outputs = OrderedDict([("in:out", x), ("rnn:out", h), ("out:out", h @ params["out.w"])])
    graph = regularizers.Graph(
        outputs, params, inputs={"x": x}, hidden=["rnn:out"], recurrent=["rnn:out"]
    )
    return graph, values


def rnn_forward(values, x):
    """numpy (float64) twin of :func:`recurrent`'s ``rnn:out``."""
    x = np.asarray(x, dtype="float64")
    h = np.zeros((x.shape[0], values["rnn.hh"].shape[0]))
    states = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ values["rnn.xh"] + h @ values["rnn.hh"] + values["rnn.b"])
        states.append(h)
    return np.stack(states, axis=1)


def linear(n_in=3, n_out=2, seed=0, bias=0.0):
    """A linear regression ``out = x @ w + b`` with mean squared error.

    Returns
    -------
    (Graph, loss, [x, y], dict of str -> ndarray)
        The graph (parameters ``out.w``, drawn from N(0, 0.5²), and ``out.b``,
        filled with ``bias``), its loss, the symbolic inputs and a copy of the
        initial parameter values.
    """
    rng = np.random.default_rng(seed)
    values = {
        "out.w": rng.normal(0.0, 0.5, (n_in, n_out)).astype("float32"),
        "out.b": np.full(n_out, bias, "float32"),
    }
    x, y = pt.matrix("x"), pt.matrix("y")
    w = pytensor.shared(values["out.w"].copy(), name="out.w")
    b = pytensor.shared(values["out.b"].copy(), name="out.b")
    out = x @ w + b
    graph = regularizers.Graph(
        {"in:out": x, "out:out": out}, {"out.w": w, "out.b": b}, inputs={"x": x}
    )
    return graph, pt.mean((out - y) ** 2), [x, y], values
