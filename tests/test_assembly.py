"""Keyword arguments -> (loss, updates): checked against numpy, step by step."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import regularizers
from trainkit.training.assembly import assemble


def two_layer(n_in=3, n_hid=4, n_out=2):
    rng = np.random.default_rng(7)
    """A hand-written tanh MLP as a Graph, plus numpy copies of its weights."""
    x = pt.matrix("x")
    y = pt.matrix("y")
    w1 = rng.normal(size=(n_in, n_hid)).astype("float32")
    b1 = rng.normal(size=n_hid).astype("float32")
    w2 = rng.normal(size=(n_hid, n_out)).astype("float32")
    params = {
        "hid1.w": pytensor.shared(w1, name="hid1.w"),
        "hid1.b": pytensor.shared(b1, name="hid1.b"),
        "out.w": pytensor.shared(w2, name="out.w"),
    }
    pre = x @ params["hid1.w"] + params["hid1.b"]
    hid = pt.tanh(pre)
    out = hid @ params["out.w"]
    graph = regularizers.Graph(
        {"in:out": x, "hid1:pre": pre, "hid1:out": hid, "out:out": out},
        params,
        inputs={"x": x},
        hidden=["hid1:out"],
    )
    loss = pt.mean(pt.sqr(out - y))
    return graph, loss, x, y


def np_forward(p, x):
    h = np.tanh(x @ p["hid1.w"] + p["hid1.b"])
    return h, h @ p["out.w"]


def np_grads(p, x, y, l2=0.0):
    """Gradients of mean((out - y)^2) + l2 * mean over weights of mean(W^2)."""
    h, out = np_forward(p, x)
    d_out = 2 * (out - y) / out.size
    g = {"out.w": h.T @ d_out}
    d_h = d_out @ p["out.w"].T * (1 - h**2)
    g["hid1.w"] = x.T @ d_h
    g["hid1.b"] = d_h.sum(0)
    for name in ("hid1.w", "out.w"):
        g[name] = g[name] + l2 * 2 * p[name] / p[name].size / 2
    return g


def values(graph):
    return {k: v.get_value() for k, v in graph.params.items()}


def data(n=5):
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


# -- assemble ------------------------------------------------------------------


def test_sgd_step_with_weight_l2_matches_numpy():
    graph, loss, x, y = two_layer()
    before = values(graph)
    a = assemble(graph, loss, algo="sgd", learning_rate=0.1, weight_l2=0.5)
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    xv, yv = data()
    reported = step(xv, yv)
    _, out = np_forward(before, xv)
    penalty = np.mean([np.mean(before[n] ** 2) for n in ("hid1.w", "out.w")])
    np.testing.assert_allclose(reported, np.mean((out - yv) ** 2) + 0.5 * penalty, rtol=1e-5)
    g = np_grads(before, xv, yv, l2=0.5)
    for name, value in values(graph).items():
        np.testing.assert_allclose(value, before[name] - 0.1 * g[name], rtol=1e-5, atol=1e-6)
    assert list(a.penalties) == ["weight_l2"]
    assert a.algo == "sgd" and a.hyperparameters == {"learning_rate": 0.1}


def test_gradient_clipping_reaches_the_update():
    graph, loss, x, y = two_layer()
    before = values(graph)
    a = assemble(graph, loss, algo="sgd", learning_rate=1.0, max_gradient_elem=0.01)
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    xv, yv = data()
    step(xv, yv)
    g = np_grads(before, xv, yv)
    for name, value in values(graph).items():
        expected = before[name] - np.clip(g[name], -0.01, 0.01)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


def test_total_gradient_norm_clipping_reaches_the_update():
    graph, loss, x, y = two_layer()
    before = values(graph)
    a = assemble(graph, loss, algo="sgd", learning_rate=1.0, max_total_gradient_norm=0.1)
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    xv, yv = data()
    step(xv, yv)
    g = np_grads(before, xv, yv)
    norm = np.sqrt(sum((v.astype(np.float64) ** 2).sum() for v in g.values()))
    assert norm > 0.1
    scale = min(norm, 0.1) / (1e-7 + norm)
    for name, value in values(graph).items():
        np.testing.assert_allclose(value, before[name] - scale * g[name], rtol=1e-4, atol=1e-6)


def test_max_norm_constrains_updated_weight_columns():
    graph, loss, x, y = two_layer()
    graph.params["hid1.w"].set_value(10 * values(graph)["hid1.w"])
    before = values(graph)
    a = assemble(graph, loss, algo="sgd", learning_rate=0.05, max_norm=1.5)
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    xv, yv = data()
    step(xv, yv)
    g = np_grads(before, xv, yv)
    for name in ("hid1.w", "out.w"):
        stepped = before[name] - 0.05 * g[name]
        norms = np.sqrt((stepped**2).sum(axis=0, keepdims=True))
        expected = stepped * np.clip(norms, 0, 1.5) / (1e-7 + norms)
        np.testing.assert_allclose(values(graph)[name], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        values(graph)["hid1.b"], before["hid1.b"] - 0.05 * g["hid1.b"], rtol=1e-5
    )


def test_dropout_is_in_the_training_loss_and_advances_a_named_generator():
    graph, loss, x, y = two_layer(n_hid=200)
    a = assemble(graph, loss, algo="sgd", learning_rate=0.0, hidden_dropout=0.5)
    rngs = [v for v in a.updates if v.name == "hidden_dropout/rng"]
    assert len(rngs) == 1
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    clean = pytensor.function([x, y], loss)
    xv, yv = data()
    first, second = step(xv, yv), step(xv, yv)
    assert first != second  # a fresh mask each step
    assert first != clean(xv, yv)
    # the clean graph still predicts without dropout
    _, out = np_forward(values(graph), xv)
    np.testing.assert_allclose(clean(xv, yv), np.mean((out - yv) ** 2), rtol=1e-5)


def test_symbolic_weight_changes_without_recompiling():
    graph, loss, x, y = two_layer()
    coefficient = pytensor.shared(np.float32(0.0), name="l2")
    a = assemble(graph, loss, algo="sgd", learning_rate=0.0, weight_l2=coefficient)
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    xv, yv = data()
    base = step(xv, yv)
    coefficient.set_value(np.float32(2.0))
    penalty = np.mean([np.mean(values(graph)[n] ** 2) for n in ("hid1.w", "out.w")])
    np.testing.assert_allclose(step(xv, yv), base + 2.0 * penalty, rtol=1e-5)


def test_optimizer_state_is_named_after_parameters():
    graph, loss, *_ = two_layer()
    a = assemble(graph, loss, algo="adam")
    names = {v.name for v in a.updates}
    assert {"hid1.w", "hid1.b", "out.w", "hid1.w/adam_m", "out.w/adam_v"} <= names


def test_pattern_that_matches_nothing_fails_before_compiling():
    graph, loss, *_ = two_layer()
    message = r"hidden_l1: pattern 'hid2:out' matches no output; outputs are in:out, hid1:pre"
    with pytest.raises(ValueError, match=message):
        assemble(graph, loss, hidden_l1=dict(weight=0.1, pattern="hid2:out"))


def test_bad_arguments():
    graph, loss, *_ = two_layer()
    with pytest.raises(TypeError, match="graph must be a regularizers.Graph"):
        assemble({"out:out": loss}, loss)
    with pytest.raises(TypeError, match="loss must be a scalar"):
        assemble(graph, graph.outputs["out:out"])
    extra = pytensor.shared(np.zeros(2, "float32"), name="extra")
    unused = regularizers.Graph(graph.outputs, {**graph.params, "extra": extra})
    with pytest.raises(ValueError, match="does not depend on parameter.*extra"):
        assemble(unused, loss)


@pytest.mark.parametrize("algo", sorted(__import__("trainkit").optimizers.names()))
def test_every_registered_algorithm_assembles_with_regularizers(algo):
    """A new optimizer is tested end to end by being registered."""
    graph, loss, x, y = two_layer()
    before = values(graph)
    a = assemble(graph, loss, algo=algo, weight_l2=1e-3, max_gradient_norm=1.0, max_norm=5.0)
    step = pytensor.function([x, y], a.loss, updates=a.updates)
    xv, yv = data()
    losses = [float(step(xv, yv)) for _ in range(3)]
    assert all(np.isfinite(losses))
    assert any(not np.array_equal(before[k], v) for k, v in values(graph).items())
