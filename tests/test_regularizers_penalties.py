"""Loss penalties against numpy implementations of the DESIGN.md table.

Each penalty is evaluated on several matched tensors of different sizes, so
theanets' normalisation (each tensor's mean, then the mean over the matched
tensors) is pinned: a global mean or a sum would give a different number.
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import recurrent, rnn_forward, shared

import regularizers
from regularizers import Graph

# -- numpy references (float64) ---------------------------------------------


def np_mean_sq(z):
    return np.mean(np.square(z, dtype="float64"))


def np_mean_abs(z):
    return np.mean(np.abs(np.asarray(z, dtype="float64")))


def np_state(z):
    z = np.asarray(z, dtype="float64")
    return np.mean((z[:, 1:] - z[:, :-1]) ** 2)


def np_norm(z, squared=False):
    z = np.asarray(z, dtype="float64")
    n = np.sum(z**2, axis=-1) if squared else np.sqrt(np.sum(z**2, axis=-1))
    return np.mean((n[:, 1:] - n[:, :-1]) ** 2)


def np_norm_squared(z):
    return np_norm(z, squared=True)


# -- a graph of symbolic outputs and shared parameters of many shapes ---------

OUTPUT_SHAPES = OrderedDict(
    [
        ("in:out", (4, 3)),
        ("hid1:out", (4, 5)),
        ("hid2:out", (6, 2)),
        ("rnn1:out", (2, 5, 3)),
        ("rnn2:out", (3, 4, 2)),
        ("out:out", (4, 2)),
    ]
)
PARAM_SHAPES = OrderedDict(
    [
        ("hid1.w", (3, 5)),
        ("hid1.b", (5,)),
        ("conv.w", (2, 3, 2, 2)),
        ("out.w", (5, 2)),
        ("out.b", (2,)),
    ]
)


@pytest.fixture(scope="module")
def world():
    """(graph, feed {variable: array}, values {name: array}) with random data."""
    rng = np.random.default_rng(42)
    outputs = OrderedDict()
    feed = OrderedDict()
    values = OrderedDict()
    for name, shape in OUTPUT_SHAPES.items():
        var = pt.tensor(name.replace(":", "_"), shape=(None,) * len(shape), dtype="float32")
        outputs[name] = var
        values[name] = rng.normal(size=shape).astype("float32")
        feed[var] = values[name]
    params = OrderedDict()
    for name, shape in PARAM_SHAPES.items():
        values[name] = rng.normal(size=shape).astype("float32")
        params[name] = shared(values[name], name)
    graph = Graph(
        outputs,
        params,
        inputs={"x": outputs["in:out"]},
        hidden=["hid1:out", "hid2:out"],
        recurrent=["rnn1:out", "rnn2:out"],
    )
    return graph, feed, values


def evaluate(expr, feed):
    f = pytensor.function(list(feed), expr, on_unused_input="ignore")
    return f(*feed.values())


WEIGHTS = ["hid1.w", "conv.w", "out.w"]
CASES = [
    # (name, extra kwargs, numpy per-tensor reference, names it should select)
    ("weight_l2", {}, np_mean_sq, WEIGHTS),
    ("weight_decay", {}, np_mean_sq, WEIGHTS),
    ("weight_l1", {}, np_mean_abs, WEIGHTS),
    ("weight_sparsity", {}, np_mean_abs, WEIGHTS),
    ("weight_l2", {"pattern": "*.b"}, np_mean_sq, ["hid1.b", "out.b"]),
    ("weight_l1", {"pattern": ["out.*", "conv.w"]}, np_mean_abs, ["conv.w", "out.w", "out.b"]),
    ("hidden_l2", {}, np_mean_sq, ["hid1:out", "hid2:out"]),
    ("hidden_l1", {}, np_mean_abs, ["hid1:out", "hid2:out"]),
    ("hidden_sparsity", {}, np_mean_abs, ["hid1:out", "hid2:out"]),
    ("hidden_l1", {"pattern": "out:out"}, np_mean_abs, ["out:out"]),
    ("hidden_l2", {"pattern": "*:out"}, np_mean_sq, list(OUTPUT_SHAPES)),
    (
        "hidden_l2",
        {"pattern": ["rnn?:out", "in:*"]},
        np_mean_sq,
        ["in:out", "rnn1:out", "rnn2:out"],
    ),
    ("recurrent_state", {}, np_state, ["rnn1:out", "rnn2:out"]),
    ("recurrent_state", {"pattern": "rnn2:out"}, np_state, ["rnn2:out"]),
    ("recurrent_norm", {}, np_norm, ["rnn1:out", "rnn2:out"]),
    ("recurrent_norm", {"squared": True}, np_norm_squared, ["rnn1:out", "rnn2:out"]),
    ("recurrent_norm", {"pattern": "rnn1:*"}, np_norm, ["rnn1:out"]),
]


@pytest.mark.parametrize(("name", "kwargs", "reference", "selected"), CASES)
def test_penalty_matches_numpy(world, name, kwargs, reference, selected):
    graph, feed, values = world
    reg = regularizers.build(name, weight=0.3, **kwargs)
    assert reg.targets(graph) == selected
    loss = reg.loss(graph)
    assert loss.ndim == 0 and loss.dtype == "float32"
    expected = np.mean([reference(values[n]) for n in selected])
    # pin the normalisation: the mean of means differs from one global mean
    if len(selected) > 1:
        pooled = np.concatenate([np.ravel(values[n]) for n in selected])
        if reference in (np_mean_sq, np_mean_abs):
            assert not np.isclose(reference(pooled), expected, rtol=1e-3)
    np.testing.assert_allclose(evaluate(loss, feed), expected, rtol=2e-5)


def test_loss_is_unweighted(world):
    graph, feed, values = world
    small = regularizers.build("hidden_l2", weight=1e-6).loss(graph)
    large = regularizers.build("hidden_l2", weight=100.0).loss(graph)
    assert evaluate(small, feed) == evaluate(large, feed)


def test_weight_l2_gradient(world):
    # d/dW of mean over K tensors of mean(W^2) is 2 W / (K * W.size)
    graph, _, values = world
    loss = regularizers.build("weight_l2", weight=1.0).loss(graph)
    w = graph.params["conv.w"]
    got = pytensor.function([], pytensor.grad(loss, w))()
    expected = 2 * values["conv.w"].astype("float64") / (3 * values["conv.w"].size)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_recurrent_penalties_on_a_scan_graph():
    graph, values = recurrent()
    x = graph.inputs["x"]
    losses = [
        regularizers.build("recurrent_state", weight=0.1).loss(graph),
        regularizers.build("recurrent_norm", weight=0.1).loss(graph),
        regularizers.build("recurrent_norm", weight=0.1, squared=True).loss(graph),
    ]
    X = np.random.default_rng(3).normal(size=(3, 5, 2)).astype("float32")
    got = pytensor.function([x], losses)(X)
    h = rnn_forward(values, X)
    expected = [np_state(h), np_norm(h), np_norm(h, squared=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("squared", [False, True])
def test_recurrent_norm_gradient_is_finite_where_a_state_is_zero(squared):
    z = pt.tensor3("z")
    graph = Graph({"rnn:out": z}, {}, recurrent=["rnn:out"])
    loss = regularizers.build("recurrent_norm", weight=1.0, squared=squared).loss(graph)
    f = pytensor.function([z], [loss, pytensor.grad(loss, z)])
    Z = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    Z[0, 1] = 0.0  # one state exactly zero
    Z[1, 2:] = 0.0  # two consecutive zero states
    value, grad = f(Z)
    np.testing.assert_allclose(value, np_norm(Z, squared=squared), rtol=1e-5)
    assert np.all(np.isfinite(grad))
    if not squared:
        # the norm's gradient is taken as 0 at a zero state
        np.testing.assert_array_equal(grad[0, 1], 0.0)
        np.testing.assert_array_equal(grad[1, 2:], 0.0)
    if not squared:
        # at a non-zero state the analytic gradient: dL/dn_t * z_t / n_t
        n = np.sqrt(np.sum(Z.astype("float64") ** 2, axis=-1))
        d = np.diff(n, axis=1)  # (batch, time - 1)
        dn = 2 * (d[0, 1] - d[0, 2]) / d.size  # state (0, 2), next to the zero state (0, 1)
        np.testing.assert_allclose(grad[0, 2], dn * Z[0, 2] / n[0, 2], rtol=1e-4)


def test_recurrent_norm_squared_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^recurrent_norm: squared must be True or False, got 1$"):
        regularizers.build("recurrent_norm", weight=0.1, squared=1)


# -- defaults that select nothing, wrong shapes ----------------------------------


def test_hidden_default_selecting_nothing_is_an_error():
    x = pt.matrix("x")
    graph = Graph({"in:out": x, "out:out": pt.tanh(x)}, {}, inputs={"x": x})
    with pytest.raises(
        ValueError,
        match=r"^hidden_l1: no output is marked hidden in this graph; give a pattern "
        r"\(outputs are in:out, out:out\)$",
    ):
        regularizers.build("hidden_l1", weight=0.1).loss(graph)
    with pytest.raises(ValueError, match=r"^hidden_sparsity: no output is marked hidden"):
        regularizers.build("hidden_sparsity", weight=0.1).loss(graph)
    with pytest.raises(
        ValueError, match=r"^recurrent_state: no output is marked recurrent in this graph; "
    ):
        regularizers.build("recurrent_state", weight=0.1).loss(graph)
    # an explicit pattern needs no marking
    loss = regularizers.build("hidden_l1", weight=0.1, pattern="out:out").loss(graph)
    X = np.array([[0.5, -1.0]], "float32")
    np.testing.assert_allclose(loss.eval({x: X}), np.mean(np.abs(np.tanh(X))), rtol=1e-6)


def test_weight_default_selecting_nothing_is_an_error():
    b = shared(np.zeros(3), "hid1.b")
    graph = Graph({"out:out": b * 2}, {"hid1.b": b})
    with pytest.raises(
        ValueError,
        match=r"^weight_l2: no parameter has more than one dimension in this graph; "
        r"give a pattern \(parameters are hid1.b\)$",
    ):
        regularizers.build("weight_l2", weight=0.1).loss(graph)
    graph = Graph({"out:out": b * 2}, {})
    with pytest.raises(ValueError, match=r"\(parameters are none\)$"):
        regularizers.build("weight_l1", weight=0.1).loss(graph)


def test_recurrent_penalty_on_a_2d_output_is_an_error(world):
    graph, _, _ = world
    for name in ("recurrent_norm", "recurrent_state"):
        with pytest.raises(
            ValueError,
            match=rf"^{name}: output 'hid1:out' has 2 dimension\(s\); recurrent penalties "
            r"need \(batch, time, units\) tensors$",
        ):
            regularizers.build(name, weight=0.1, pattern="hid1:out").loss(graph)
    z = pt.matrix("z")
    marked = Graph({"rnn:out": z}, {}, recurrent=["rnn:out"])
    with pytest.raises(ValueError, match=r"output 'rnn:out' has 2 dimension\(s\)"):
        regularizers.build("recurrent_norm", weight=0.1).loss(marked)


def test_float64_parameters_give_a_float64_penalty():
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        w = shared(np.arange(6.0).reshape(2, 3), "hid1.w", dtype="float64")
        graph = Graph({"out:out": w.sum()}, {"hid1.w": w})
        loss = regularizers.build("weight_l2", weight=0.1).loss(graph)
        assert loss.dtype == "float64"
        np.testing.assert_allclose(loss.eval(), np.mean(np.arange(6.0) ** 2), rtol=1e-12)
