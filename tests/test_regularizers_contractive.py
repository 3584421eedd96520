"""The contractive penalty against per-example Jacobians computed in numpy.

Feed-forward: analytically, d tanh(xW + b)/dx = diag(1 - h^2) W^T per example.
Recurrent (scan): by central finite differences of a float64 numpy RNN.
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import feedforward, recurrent, rnn_forward, shared

import regularizers
from regularizers import Graph


def np_contractive(jacobians):
    """Mean over examples, output units and input features of the squared Jacobian."""
    return np.mean(np.square(jacobians))


def ff_jacobians(values, X):
    """Per-example Jacobians of hid1:out and hid2:out w.r.t. x, shape (batch, units, inputs)."""
    X = X.astype("float64")
    h1 = np.tanh(X @ values["hid1.w"] + values["hid1.b"])
    h2 = np.tanh(h1 @ values["hid2.w"] + values["hid2.b"])
    j1 = (1 - h1**2)[:, :, None] * values["hid1.w"].T[None]  # (b, 4, 3)
    j2 = (1 - h2**2)[:, :, None] * np.einsum("ji,bik->bjk", values["hid2.w"].T, j1)
    return j1, j2


def test_feedforward_default_is_mean_over_hidden_outputs():
    graph, values = feedforward()
    x = graph.inputs["x"]
    losses = [
        regularizers.build("contractive", weight=0.1).loss(graph),
        regularizers.build("contractive", weight=0.1, pattern="hid1:out").loss(graph),
        regularizers.build("contractive", weight=0.1, pattern="hid2:out", wrt="x").loss(graph),
    ]
    assert all(loss.dtype == "float32" for loss in losses)
    X = np.random.default_rng(5).normal(size=(6, 3)).astype("float32")
    both, first, second = pytensor.function([x], losses)(X)
    j1, j2 = ff_jacobians(values, X)
    np.testing.assert_allclose(first, np_contractive(j1), rtol=1e-5)
    np.testing.assert_allclose(second, np_contractive(j2), rtol=1e-5)
    np.testing.assert_allclose(both, (np_contractive(j1) + np_contractive(j2)) / 2, rtol=1e-5)
    # not theanets' gradient of the batch mean, which is a different number
    theanets = np.mean(np.square(j1.mean(axis=0)))
    assert not np.isclose(first, theanets, rtol=1e-2)


def finite_difference_jacobians(f, X, eps=1e-5):
    """Per-example Jacobians of f (batch-major, float64) by central differences."""
    batch = X.shape[0]
    n_out = f(X)[0].size
    n_in = X[0].size
    jac = np.zeros((batch, n_out, n_in))
    for i in range(n_in):
        dx = np.zeros(n_in)
        dx[i] = eps
        dX = np.broadcast_to(dx.reshape(X.shape[1:]), X.shape)
        # each example only moves its own input, so one pass covers the batch
        jac[:, :, i] = (f(X + dX) - f(X - dX)).reshape(batch, n_out) / (2 * eps)
    return jac


def test_recurrent_scan_layer_against_finite_differences():
    graph, values = recurrent()
    x = graph.inputs["x"]
    loss = regularizers.build("contractive", weight=1.0).loss(graph)
    X = np.random.default_rng(2).normal(size=(3, 4, 2)).astype("float32")
    got = pytensor.function([x], loss)(X)
    jac = finite_difference_jacobians(lambda a: rnn_forward(values, a), X.astype("float64"))
    assert jac.shape == (3, 4 * 3, 4 * 2)
    # causality: no state depends on a later input
    assert np.allclose(jac.reshape(3, 4, 3, 4, 2)[:, 0, :, 1:], 0.0)
    np.testing.assert_allclose(got, np_contractive(jac), rtol=1e-4)


@pytest.fixture(scope="module")
def two_inputs():
    rng = np.random.default_rng(9)
    x1, x2 = pt.matrix("x1"), pt.matrix("x2")
    values = {
        "a": rng.normal(size=(3, 4)).astype("float32"),
        "b": rng.normal(size=(2, 4)).astype("float32"),
        "c": rng.normal(size=(3, 2)).astype("float32"),
    }
    p = {k: shared(v, f"hid.{k}") for k, v in values.items()}
    outputs = OrderedDict(
        [
            ("in1:out", x1),
            ("in2:out", x2),
            ("hid0:out", pt.tanh(x1 @ p["c"])),
            ("hid1:out", pt.tanh(x1 @ p["a"] + x2 @ p["b"])),
        ]
    )
    graph = Graph(
        outputs,
        {f"hid.{k}": v for k, v in p.items()},
        inputs={"x1": x1, "x2": x2},
        hidden=["hid1:out"],
    )
    return graph, values


def test_wrt_selects_among_the_inputs(two_inputs):
    graph, v = two_inputs
    x1, x2 = graph.inputs["x1"], graph.inputs["x2"]
    losses = [
        regularizers.build("contractive", weight=0.1).loss(graph),
        regularizers.build("contractive", weight=0.1, wrt="x2").loss(graph),
        regularizers.build("contractive", weight=0.1, wrt=["x1", "x2"]).loss(graph),
        regularizers.build("contractive", weight=0.1, pattern="hid0:out").loss(graph),
    ]
    rng = np.random.default_rng(1)
    X1 = rng.normal(size=(5, 3)).astype("float32")
    X2 = rng.normal(size=(5, 2)).astype("float32")
    default, only2, listed, hid0 = pytensor.function([x1, x2], losses)(X1, X2)
    h = np.tanh(X1.astype("float64") @ v["a"] + X2 @ v["b"])
    d = (1 - h**2)[:, :, None]
    term1 = np_contractive(d * v["a"].T[None])
    term2 = np_contractive(d * v["b"].T[None])
    np.testing.assert_allclose(default, (term1 + term2) / 2, rtol=1e-5)
    np.testing.assert_allclose(listed, (term1 + term2) / 2, rtol=1e-5)
    np.testing.assert_allclose(only2, term2, rtol=1e-5)
    h0 = np.tanh(X1.astype("float64") @ v["c"])
    # hid0 depends on x1 only: by default the other input is left out
    np.testing.assert_allclose(hid0, np_contractive((1 - h0**2)[:, :, None] * v["c"].T), rtol=1e-5)


def test_errors(two_inputs):
    graph, _ = two_inputs
    with pytest.raises(
        ValueError, match=r"^contractive: output 'hid0:out' does not depend on input 'x2'$"
    ):
        regularizers.build("contractive", weight=0.1, pattern="hid0:out", wrt="x2").loss(graph)
    with pytest.raises(
        ValueError,
        match=r"^contractive wrt: pattern 'x11' matches no input; inputs are x1, x2 "
        r"\(closest: x1\)$",
    ):
        regularizers.build("contractive", weight=0.1, wrt="x11").loss(graph)
    x = pt.matrix("x")
    bare = Graph({"in:out": x, "hid1:out": pt.tanh(x)}, {}, hidden=["hid1:out"])
    with pytest.raises(
        ValueError, match=r"^contractive: the graph names no inputs to differentiate against$"
    ):
        regularizers.build("contractive", weight=0.1).loss(bare)
    y = pt.matrix("y")
    elsewhere = Graph(
        {"in:out": x, "hid1:out": pt.tanh(y)}, {}, inputs={"x": x}, hidden=["hid1:out"]
    )
    with pytest.raises(
        ValueError, match=r"^contractive: output 'hid1:out' depends on none of the inputs x$"
    ):
        regularizers.build("contractive", weight=0.1).loss(elsewhere)
    unmarked = Graph({"in:out": x, "hid1:out": pt.tanh(x)}, {}, inputs={"x": x})
    with pytest.raises(
        ValueError,
        match=r"^contractive: no output is marked hidden in this graph; give a pattern "
        r"\(outputs are in:out, hid1:out\)$",
    ):
        regularizers.build("contractive", weight=0.1).loss(unmarked)
