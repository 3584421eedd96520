"""``regularizers.Graph``: construction errors and output replacement.

References are numpy recomputations of the hand-written graph in helpers.py.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import feedforward, ff_forward, shared

import regularizers
from regularizers import Graph


def test_basic_view():
    graph, _ = feedforward()
    assert list(graph.outputs) == [
        "in:out",
        "hid1:pre",
        "hid1:out",
        "hid2:pre",
        "hid2:out",
        "out:out",
    ]
    assert graph.output == "out:out"
    assert graph.input_outputs() == ["in:out"]
    assert graph.hidden == ("hid1:out", "hid2:out")
    assert graph.recurrent == ()
    assert dict(graph.updates) == {}
    assert repr(graph) == (
        "Graph(outputs=[in:out, hid1:pre, hid1:out, hid2:pre, hid2:out, out:out], "
        "params=[hid1.w, hid1.b, hid2.w, hid2.b, out.w, out.b], inputs=[x], "
        "hidden=[hid1:out, hid2:out], recurrent=[])"
    )


def test_hidden_and_recurrent_accept_a_single_name_and_drop_repeats():
    x = pt.matrix("x")
    g = Graph({"a:out": x}, {}, hidden="a:out", recurrent=["a:out", "a:out"])
    assert g.hidden == ("a:out",) and g.recurrent == ("a:out",)


def test_hidden_naming_a_non_output_is_an_error():
    x = pt.matrix("x")
    outputs = {"in:out": x, "hid1:out": pt.tanh(x)}
    with pytest.raises(
        ValueError,
        match=r"^Graph: hidden names 'hid2:out', which is not an output; "
        r"outputs are in:out, hid1:out \(closest: hid1:out",
    ):
        Graph(outputs, {}, hidden=["hid1:out", "hid2:out"])
    with pytest.raises(
        ValueError, match=r"^Graph: recurrent names 'lstm', which is not an output; outputs are "
    ):
        Graph(outputs, {}, recurrent=["lstm"])


def test_params_must_be_shared_variables():
    x = pt.matrix("x")
    with pytest.raises(
        TypeError,
        match=r"^Graph: params\['hid1.w'\] must be a PyTensor shared variable, "
        r"got TensorVariable$",
    ):
        Graph({"in:out": x}, {"hid1.w": pt.matrix("w")})
    with pytest.raises(TypeError, match=r"params\['hid1.w'\] must be .* got ndarray"):
        Graph({"in:out": x}, {"hid1.w": np.ones((2, 2), "float32")})


def test_other_construction_errors():
    x = pt.matrix("x")
    with pytest.raises(TypeError, match=r"^Graph: outputs must be a mapping of name -> variable"):
        Graph([x], {})
    with pytest.raises(TypeError, match=r"^Graph: outputs\['in:out'\] must be a PyTensor variable"):
        Graph({"in:out": np.ones(2)}, {})
    with pytest.raises(TypeError, match=r"^Graph: outputs names must be non-empty strings, got 3"):
        Graph({3: x}, {})
    with pytest.raises(ValueError, match=r"^Graph: outputs is empty"):
        Graph({}, {})
    with pytest.raises(TypeError, match=r"^Graph: inputs must be a mapping"):
        Graph({"in:out": x}, {}, inputs=[x])


def test_replace_propagates_downstream_and_leaves_original_alone():
    graph, values = feedforward()
    h1 = graph.outputs["hid1:out"]
    new = graph.replace({"hid1:out": 2 * h1})
    assert new.params is graph.params or dict(new.params) == dict(graph.params)
    x = graph.inputs["x"]
    names = ["hid1:pre", "hid1:out", "hid2:out", "out:out"]
    f = pytensor.function([x], [new.outputs[n] for n in names] + [graph.outputs["out:out"]])
    X = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    pre1, hid1, hid2, out, old_out = f(X)
    clean = ff_forward(values, X)
    ref = ff_forward(values, X, hid1=2 * clean["hid1:out"])
    np.testing.assert_allclose(pre1, X @ values["hid1.w"] + values["hid1.b"], rtol=1e-5)
    np.testing.assert_allclose(hid1, 2 * clean["hid1:out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hid2, ref["hid2:out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref["out:out"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(old_out, clean["out:out"], rtol=1e-5, atol=1e-5)
    # the original graph's outputs are untouched; changes_from maps old -> new
    assert graph.outputs["hid1:out"] is h1
    changes = new.changes_from(graph)
    assert graph.outputs["in:out"] not in changes and graph.outputs["hid1:pre"] not in changes
    assert changes[graph.outputs["out:out"]] is new.outputs["out:out"]


def test_replace_keeps_shared_parameters_so_gradients_still_work():
    graph, _ = feedforward()
    new = graph.replace({"hid2:out": graph.outputs["hid2:out"] * 0})
    w = graph.params["hid2.w"]
    # with hid2:out zeroed the output no longer depends on hid2.w: gradient is zero
    grad = pytensor.grad(new.outputs["out:out"].sum(), w)
    f = pytensor.function([graph.inputs["x"]], grad)
    np.testing.assert_array_equal(f(np.ones((2, 3), "float32")), np.zeros((4, 5), "float32"))


def test_replace_merges_updates():
    graph, _ = feedforward()
    a = shared(0.0, "a")
    b = shared(0.0, "b")
    g1 = graph.replace({"hid1:out": graph.outputs["hid1:out"]}, updates={a: a + 1})
    g2 = g1.replace({"hid2:out": g1.outputs["hid2:out"]}, updates={b: b + 1})
    assert list(g2.updates) == [a, b]
    assert dict(graph.updates) == {}


def test_replace_rebuilds_existing_updates_with_the_outputs():
    # an update built on the old graph must follow the replacement too
    graph, _ = feedforward()
    x = graph.inputs["x"]
    total = shared(0.0, "total")
    g1 = graph.replace(
        {"hid1:out": graph.outputs["hid1:out"]},
        updates={total: total + graph.outputs["hid1:pre"].sum()},
    )
    g2 = g1.replace({"in:out": x * 0})
    assert g1.updates[total] is not g2.updates[total]
    f = pytensor.function([x], g2.outputs["hid1:pre"], updates=g2.updates)
    X = np.ones((2, 3), "float32")
    pre = f(X)
    np.testing.assert_allclose(total.get_value(), pre.sum(), rtol=1e-6)
    np.testing.assert_allclose(pre, np.broadcast_to(g2.params["hid1.b"].get_value(), (2, 4)))


def test_an_input_output_stays_one_after_replacement():
    graph, _ = feedforward()
    x = graph.inputs["x"]
    noisy = graph.replace({"in:out": x + 1})
    assert noisy.outputs["in:out"] is not x
    assert noisy.input_outputs() == ["in:out"]
    assert noisy.replace({"hid1:out": noisy.outputs["hid1:out"]}).input_outputs() == ["in:out"]


def test_graph_view_works_with_regularizers_on_a_hand_written_graph():
    # the README's promise: no trainkit network needed
    graph, values = feedforward()
    loss = regularizers.build("weight_l2", weight=1.0).loss(graph)
    expected = np.mean([np.mean(values[k] ** 2) for k in ("hid1.w", "hid2.w", "out.w")])
    np.testing.assert_allclose(loss.eval(), expected, rtol=1e-6)
