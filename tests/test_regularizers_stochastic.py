"""Noise and dropout inserted into built graphs.

References: numpy recomputation of the hand-written graphs in helpers.py
from the perturbed values the compiled function returns (so downstream
propagation is pinned exactly), and sampling statistics on large tensors
with 5-sigma tolerances.
"""

import copy
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import feedforward, ff_forward, recurrent, rnn_forward, shared
from pytensor.compile.sharedvalue import SharedVariable

import regularizers
from regularizers import Graph


def compile_outputs(graph, names):
    """A function of the graph's inputs returning the named outputs, advancing its rngs."""
    return pytensor.function(
        list(graph.inputs.values()), [graph.outputs[n] for n in names], updates=graph.updates
    )


def apply(graph, regs):
    for reg in regs:
        graph = reg.modify_graph(graph)
    return graph


def X_ff(batch=8, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 3)).astype("float32")


# -- propagation -------------------------------------------------------------------


def test_noise_on_hid1_reaches_the_output():
    graph, values = feedforward()
    before = OrderedDict(graph.outputs)
    noisy = regularizers.build("noise", weight=0.5, pattern="hid1:out").modify_graph(graph)
    assert graph.outputs == before  # the original graph is untouched
    f = compile_outputs(noisy, ["hid1:pre", "hid1:out", "hid2:out", "out:out"])
    X = X_ff()
    pre, h1, h2, out = f(X)
    clean = ff_forward(values, X)
    np.testing.assert_allclose(pre, X @ values["hid1.w"] + values["hid1.b"], rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(h1 - clean["hid1:out"]) > 0)
    assert np.abs(h1 - clean["hid1:out"]).max() < 0.5 * 6
    ref = ff_forward(values, X, hid1=h1.astype("float64"))
    np.testing.assert_allclose(h2, ref["hid2:out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref["out:out"], rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, clean["out:out"], atol=1e-3)


def test_hidden_dropout_on_a_chain_propagates_the_first_mask():
    graph, values = feedforward(sizes=(3, 30, 30, 2))
    reg = regularizers.build("hidden_dropout", weight=0.5)
    assert reg.targets(graph) == ["hid1:out", "hid2:out"]
    f = compile_outputs(reg.modify_graph(graph), ["hid1:out", "hid2:pre", "hid2:out", "out:out"])
    X = X_ff()
    h1, pre2, h2, out = f(X)
    clean_h1 = ff_forward(values, X)["hid1:out"]
    kept1 = h1 != 0
    assert 0 < kept1.mean() < 1
    np.testing.assert_allclose(h1[kept1], 2 * clean_h1[kept1], rtol=1e-5)
    # hid2 is computed from the dropped-out hid1, not from the clean one
    np.testing.assert_allclose(
        pre2, h1.astype("float64") @ values["hid2.w"] + values["hid2.b"], rtol=1e-5, atol=1e-5
    )
    assert not np.allclose(pre2, clean_h1 @ values["hid2.w"] + values["hid2.b"], atol=1e-3)
    kept2 = h2 != 0
    assert 0 < kept2.mean() < 1
    np.testing.assert_allclose(h2[kept2], 2 * np.tanh(pre2[kept2]), rtol=1e-5)
    assert not np.array_equal(kept1, kept2)  # each output draws its own mask
    np.testing.assert_allclose(
        out, h2.astype("float64") @ values["out.w"] + values["out.b"], rtol=1e-5, atol=1e-5
    )


def test_output_dropout_touches_only_the_output():
    graph, values = feedforward(sizes=(3, 4, 5, 20))
    reg = regularizers.build("output_dropout", weight=0.25)
    assert reg.targets(graph) == ["out:out"]
    h2, out = compile_outputs(reg.modify_graph(graph), ["hid2:out", "out:out"])(X_ff())
    clean = ff_forward(values, X_ff())
    np.testing.assert_allclose(h2, clean["hid2:out"], rtol=1e-5, atol=1e-6)
    kept = out != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(out[kept], clean["out:out"][kept] / 0.75, rtol=1e-5, atol=1e-6)


def test_mapping_form_of_noise():
    graph, values = feedforward()
    regs = regularizers.from_kwargs(noise={"hid[12]:out": 0.1, "in:out": 0.01})
    noisy = apply(graph, regs)
    assert sorted(v.name for v in noisy.updates) == ["noise[hid[12]:out]/rng", "noise[in:out]/rng"]
    names = ["in:out", "hid1:pre", "hid1:out", "hid2:out", "out:out"]
    X = X_ff()
    x_n, pre1, h1, h2, out = compile_outputs(noisy, names)(X)
    d = x_n - X
    assert np.all(d != 0) and np.abs(d).max() < 0.01 * 6
    pre_ref = x_n.astype("float64") @ values["hid1.w"] + values["hid1.b"]
    np.testing.assert_allclose(pre1, pre_ref, rtol=1e-5, atol=1e-5)
    d1 = h1 - np.tanh(pre_ref)
    assert np.all(d1 != 0) and np.abs(d1).max() < 0.1 * 6 and np.abs(d1).max() > 0.01 * 6
    pre2 = h1.astype("float64") @ values["hid2.w"] + values["hid2.b"]
    d2 = h2 - np.tanh(pre2)
    assert np.all(np.abs(d2) > 0) and np.abs(d2).max() < 0.1 * 6
    np.testing.assert_allclose(
        out, h2.astype("float64") @ values["out.w"] + values["out.b"], rtol=1e-5, atol=1e-5
    )


def test_input_noise_then_input_dropout():
    # both act on 'in:out'; the second must still find it after the first replaced it
    graph, values = feedforward()
    regs = regularizers.from_kwargs(input_noise=0.1, input_dropout=0.5)
    assert [r.targets(graph) for r in regs] == [["in:out"], ["in:out"]]
    changed = apply(graph, regs)
    assert changed.input_outputs() == ["in:out"]
    X = np.random.default_rng(0).normal(size=(50, 3)).astype("float32")
    x_n, pre1 = compile_outputs(changed, ["in:out", "hid1:pre"])(X)
    kept = x_n != 0
    assert 0.2 < kept.mean() < 0.8
    noise = x_n[kept] / 2 - X[kept]
    assert np.all(noise != 0) and np.abs(noise).max() < 0.1 * 6
    pre_ref = x_n.astype("float64") @ values["hid1.w"] + values["hid1.b"]
    np.testing.assert_allclose(pre1, pre_ref, rtol=1e-5, atol=1e-5)


def test_noise_and_dropout_on_a_recurrent_scan_graph():
    graph, values = recurrent(units=8)
    regs = regularizers.from_kwargs(input_noise=0.05, hidden_dropout=0.5)
    changed = apply(graph, regs)
    X = np.random.default_rng(1).normal(size=(4, 5, 2)).astype("float32")
    x_n, h, out = compile_outputs(changed, ["in:out", "rnn:out", "out:out"])(X)
    assert np.all(x_n != X) and np.abs(x_n - X).max() < 0.05 * 6
    # the scan runs on the noisy input; its result is dropped out afterwards
    clean = rnn_forward(values, x_n)
    kept = h != 0
    assert 0.2 < kept.mean() < 0.8
    np.testing.assert_allclose(h[kept], 2 * clean[kept], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out, h.astype("float64") @ values["out.w"], rtol=1e-4, atol=1e-5)


# -- statistics ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_samples():
    """One draw of noise (sigma 0.3) on 'a:out' and dropout (p 0.3) on 'b:out', 200k each."""
    x = pt.matrix("x")
    graph = Graph(
        OrderedDict([("in:out", x), ("a:out", x * 1.5), ("b:out", x * 2)]), {}, inputs={"x": x}
    )
    regs = regularizers.from_kwargs(noise={"a:out": 0.3}, dropout={"b:out": 0.3})
    X = np.random.default_rng(0).uniform(0.5, 1.5, size=(500, 400)).astype("float32")
    a, b = compile_outputs(apply(graph, regs), ["a:out", "b:out"])(X)
    return X, a, b


def test_dropout_statistics(big_samples):
    X, _, b = big_samples
    p, n = 0.3, X.size
    assert b.dtype == np.float32
    kept = b != 0
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma
    # kept units are scaled by exactly 1 / (1 - p)
    np.testing.assert_allclose(b[kept], 2 * X[kept] / np.float32(1 - p), rtol=1e-6)
    # the mean is preserved: E[mask / (1 - p)] = 1
    ratio = b / (2 * X)
    assert abs(ratio.mean() - 1) < 5 * np.sqrt(p / ((1 - p) * n))


def test_noise_statistics(big_samples):
    X, a, _ = big_samples
    s, n = 0.3, X.size
    assert a.dtype == np.float32
    eps = a.astype("float64") - 1.5 * X
    assert abs(eps.mean()) < 5 * s / np.sqrt(n)
    assert abs(eps.std() - s) < 5 * s / np.sqrt(2 * n)
    # Gaussian, not uniform: about 4.6% of draws beyond 2 sigma
    assert abs(np.mean(np.abs(eps) > 2 * s) - 0.0455) < 0.005


# -- random state ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(hidden_dropout=0.5), "hidden_dropout/rng"),
        (dict(input_noise=0.1), "input_noise/rng"),
        (dict(output_noise=0.1), "output_noise/rng"),
        (dict(noise={"hid[12]:out": 0.1}), "noise[hid[12]:out]/rng"),
        (
            dict(dropout=dict(weight=0.1, pattern=["hid1:out", "in:out"])),
            "dropout[hid1:out,in:out]/rng",
        ),
        (dict(hidden_noise=dict(weight=0.1, pattern="hid2:out")), "hidden_noise[hid2:out]/rng"),
    ],
)
def test_random_state_is_a_named_shared_variable_in_the_updates(kwargs, name):
    graph, _ = feedforward()
    (reg,) = regularizers.from_kwargs(**kwargs)
    assert reg.rng_name == name
    changed = reg.modify_graph(graph)
    (rng,) = changed.updates
    assert isinstance(rng, SharedVariable) and rng.name == name
    assert isinstance(rng.get_value(), np.random.Generator)
    assert dict(graph.updates) == {}


@pytest.fixture(scope="module")
def masks():
    """hidden_dropout built and compiled once per seed: {label: first-call mask function}.

    Each function resets its generator to the state it was built with, then
    returns the mask one call draws.
    """
    graph, _ = feedforward(sizes=(3, 40, 5, 2))
    made = {}
    for label, seed in [("default", None), ("default2", None), ("a", 11), ("b", 11), ("c", 12)]:
        reg = regularizers.build("hidden_dropout", weight=0.5, pattern="hid1:out", seed=seed)
        changed = reg.modify_graph(graph)
        (rng,) = changed.updates
        f = compile_outputs(changed, ["hid1:out"])
        made[label] = (rng, f, copy.deepcopy(rng.get_value()))
    return made


def first_mask(masks, label):
    rng, f, initial = masks[label]
    rng.set_value(copy.deepcopy(initial))
    return f(X_ff())[0] != 0


def test_masks_advance_and_reset(masks):
    rng, f, _ = masks["c"]
    first = first_mask(masks, "c")
    state = copy.deepcopy(rng.get_value())
    second, third = f(X_ff())[0] != 0, f(X_ff())[0] != 0
    assert not np.array_equal(first, second) and not np.array_equal(second, third)
    rng.set_value(state)  # a checkpointed generator state replays the same masks
    np.testing.assert_array_equal(f(X_ff())[0] != 0, second)
    np.testing.assert_array_equal(f(X_ff())[0] != 0, third)


def test_equal_seeds_give_equal_masks(masks):
    np.testing.assert_array_equal(first_mask(masks, "a"), first_mask(masks, "b"))
    assert not np.array_equal(first_mask(masks, "a"), first_mask(masks, "c"))
    # no seed: derived from the generator's name, so two builds agree
    np.testing.assert_array_equal(first_mask(masks, "default"), first_mask(masks, "default2"))
    assert not np.array_equal(first_mask(masks, "default"), first_mask(masks, "a"))


@pytest.mark.parametrize(
    "kwargs",
    [dict(hidden_dropout=0.5, input_noise=0.1), dict(input_noise=0.1, hidden_dropout=0.5)],
    ids=["dropout-first", "noise-first"],
)
def test_draws_follow_numpy_generators_across_calls(kwargs):
    # reference: numpy Generators with the same initial states, drawn in order;
    # each call must advance every generator past all the draws it used, also
    # when a later regularizer perturbs something upstream of an earlier one
    graph, _ = feedforward(sizes=(3, 30, 30, 2))
    changed = apply(graph, regularizers.from_kwargs(**kwargs))
    rngs = {var.name: var for var in changed.updates}
    assert sorted(rngs) == ["hidden_dropout/rng", "input_noise/rng"]
    drop = copy.deepcopy(rngs["hidden_dropout/rng"].get_value())
    noise = copy.deepcopy(rngs["input_noise/rng"].get_value())
    f = compile_outputs(changed, ["in:out", "hid1:out", "hid2:out"])
    X = X_ff()
    for _ in range(3):
        x_n, h1, h2 = f(X)
        eps = noise.normal(0.0, 1.0, size=X.shape).astype("float32")
        np.testing.assert_allclose(x_n, X + np.float32(0.1) * eps, rtol=1e-6)
        for h in (h1, h2):
            u = drop.uniform(0.0, 1.0, size=h.shape).astype("float32")
            np.testing.assert_array_equal(h != 0, u >= 0.5)
    assert rngs["hidden_dropout/rng"].get_value().bit_generator.state == drop.bit_generator.state
    assert rngs["input_noise/rng"].get_value().bit_generator.state == noise.bit_generator.state


def test_fresh_rngs_are_deterministic():
    reg = regularizers.build("hidden_dropout", weight=0.5)
    r1, r2 = reg.make_rng(), regularizers.build("hidden_dropout", weight=0.2).make_rng()
    assert r1 is not r2
    assert r1.get_value().bit_generator.state == r2.get_value().bit_generator.state
    other = regularizers.build("input_dropout", weight=0.5).make_rng()
    assert other.get_value().bit_generator.state != r1.get_value().bit_generator.state
    seeded = regularizers.build("hidden_dropout", weight=0.5, seed=3).make_rng()
    expected = np.random.default_rng(3).bit_generator.state
    assert seeded.get_value().bit_generator.state == expected


# -- weights -----------------------------------------------------------------------------


def test_symbolic_dropout_rate_and_noise_level():
    graph, values = feedforward(sizes=(3, 30, 5, 2))
    p, s = shared(0.0, "p"), shared(0.0, "s")
    regs = [
        regularizers.build("dropout", weight=p, pattern="hid1:out"),
        regularizers.build("noise", weight=s, pattern="hid2:out"),
    ]
    f = compile_outputs(apply(graph, regs), ["hid1:out", "hid2:out"])
    X = X_ff()
    clean = ff_forward(values, X)
    h1, h2 = f(X)
    np.testing.assert_allclose(h1, clean["hid1:out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h2, clean["hid2:out"], rtol=1e-5, atol=1e-6)
    p.set_value(np.float32(0.75))
    s.set_value(np.float32(0.2))
    h1, h2 = f(X)
    kept = h1 != 0
    assert 0 < kept.mean() < 0.6
    np.testing.assert_allclose(h1[kept], 4 * clean["hid1:out"][kept], rtol=1e-5)
    ref = ff_forward(values, X, hid1=h1.astype("float64"))["hid2:out"]
    assert np.all(h2 != ref) and np.abs(h2 - ref).max() < 0.2 * 6


def test_zero_weight_leaves_the_graph_alone():
    graph, _ = feedforward()
    for name in ("hidden_dropout", "input_noise", "output_dropout"):
        assert regularizers.build(name, weight=0).modify_graph(graph) is graph


# -- errors --------------------------------------------------------------------------------


def test_generic_noise_and_dropout_need_a_pattern():
    with pytest.raises(
        TypeError,
        match=r"^noise: give a pattern, e.g. noise=\{'hid1:out': 0.1\}, or use input_noise, "
        r"hidden_noise or output_noise$",
    ):
        regularizers.build("noise", weight=0.1)
    with pytest.raises(
        TypeError,
        match=r"^dropout: give a pattern, e.g. dropout=\{'hid1:out': 0.5\}, or use input_dropout, "
        r"hidden_dropout or output_dropout$",
    ):
        regularizers.build("dropout", weight=0.5)


@pytest.mark.parametrize("name", ["dropout", "input_dropout", "hidden_dropout", "output_dropout"])
@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1])
def test_dropout_rate_out_of_range(name, rate):
    with pytest.raises(
        ValueError, match=rf"^{name}: weight must be a number in \[0, 1\), got {rate}$"
    ):
        regularizers.build(name, weight=rate, pattern="hid1:out")


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_bad_seed(seed):
    with pytest.raises(
        TypeError, match=r"^hidden_noise: seed must be a non-negative int or None, got "
    ):
        regularizers.build("hidden_noise", weight=0.1, seed=seed)


def test_default_selection_empty():
    x = pt.matrix("x")
    y = pt.matrix("y")
    graph = Graph({"in:out": x, "out:out": x * 2}, {}, inputs={"y": y})
    with pytest.raises(
        ValueError,
        match=r"^input_dropout: no output is a graph input \(like 'in:out'\) in this graph; "
        r"give a pattern \(outputs are in:out, out:out\)$",
    ):
        regularizers.build("input_dropout", weight=0.5).modify_graph(graph)
    with pytest.raises(
        ValueError, match=r"^hidden_noise: no output is marked hidden in this graph"
    ):
        regularizers.build("hidden_noise", weight=0.5).modify_graph(graph)


def test_pattern_matching_nothing():
    graph, _ = feedforward()
    with pytest.raises(
        ValueError,
        match=r"^noise: pattern 'hid3:out' matches no output; outputs are in:out, hid1:pre, "
        r"hid1:out, hid2:pre, hid2:out, out:out \(closest: ",
    ):
        regularizers.from_kwargs(noise={"hid3:out": 0.1})[0].modify_graph(graph)
