"""Norm constraints and gradient clipping against numpy re-implementations.

The references re-implement Lasagne's ``norm_constraint`` /
``total_norm_constraint`` (W * clip(n, 0, c) / (eps + n)) and downhill's
per-parameter ``max_gradient_norm`` (g * min(1, c / ||g||)) in float64
numpy. Property tests (hypothesis) compile each PyTensor function once and
feed arrays in.
"""

import functools
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import feedforward, shared
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import regularizers
from regularizers import Graph, norm_constraint, total_norm_constraint

EPS = 1e-7


def np_norm_constraint(w, c, norm_axes=None, eps=EPS):
    w = np.asarray(w, dtype="float64")
    if norm_axes is None:
        if w.ndim == 2:
            norm_axes = (0,)
        elif w.ndim in (3, 4, 5):
            norm_axes = tuple(range(1, w.ndim))
        else:
            raise AssertionError("no default")
    n = np.sqrt(np.sum(w**2, axis=tuple(norm_axes), keepdims=True))
    return w * (np.clip(n, 0, c) / (eps + n))


def np_total_norm_constraint(ws, c, eps=EPS):
    ws = [np.asarray(w, dtype="float64") for w in ws]
    n = np.sqrt(sum(np.sum(w**2) for w in ws))
    return [w * (min(n, c) / (eps + n)) for w in ws], n


def slice_norms(w, norm_axes):
    return np.sqrt(np.sum(np.asarray(w, dtype="float64") ** 2, axis=norm_axes))


# -- norm_constraint -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "norm_axes"),
    [
        ((5, 4), None),
        ((3, 2, 4), None),
        ((4, 3, 2, 2), None),
        ((3, 2, 2, 2, 2), None),
        ((6,), (0,)),
        ((5, 4), (1,)),
        ((3, 2, 4), (0, 2)),
        ((2, 2, 2, 2, 2, 2), (1, 3)),
    ],
)
def test_norm_constraint_matches_lasagne(shape, norm_axes):
    rng = np.random.default_rng(len(shape))
    w = rng.normal(size=shape).astype("float32")
    axes = norm_axes or ((0,) if len(shape) == 2 else tuple(range(1, len(shape))))
    norms = slice_norms(w, axes)
    # some slices above the limit and some below (one norm: put it above)
    c = float(np.median(norms)) if norms.size > 1 else float(norms) / 2
    assert norms.max() > c and (norms.size == 1 or c > norms.min())
    var = pt.tensor("w", shape=(None,) * len(shape), dtype="float32")
    out = norm_constraint(var, c, norm_axes=norm_axes)
    assert out.dtype == "float32"
    got = pytensor.function([var], out)(w)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np_norm_constraint(w, c, norm_axes), rtol=1e-5, atol=1e-7)
    assert np.all(slice_norms(got, axes) <= c * (1 + 1e-5))


def test_norm_constraint_two_d_is_per_column():
    w = np.array([[3.0, 0.0, 0.3], [4.0, 1.0, 0.4]], "float32")
    got = norm_constraint(pt.as_tensor(w), 1.0).eval()
    np.testing.assert_allclose(got[:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(got[:, 1:], w[:, 1:] * (1 / (1 + EPS), 0.5 / (0.5 + EPS)), rtol=1e-6)


@pytest.mark.parametrize("ndim", [1, 6, 0])
def test_norm_constraint_without_a_default_needs_norm_axes(ndim):
    var = pt.tensor("w", shape=(None,) * ndim, dtype="float32")
    with pytest.raises(
        ValueError,
        match=rf"^norm_constraint: unsupported tensor dimensionality {ndim}; give norm_axes",
    ):
        norm_constraint(var, 1.0)


def test_norm_constraint_symbolic_limit_and_epsilon():
    c = shared(1.0, "c")
    w = np.array([[3.0], [4.0]], "float32")
    f = pytensor.function([], norm_constraint(pt.as_tensor(w), c, epsilon=0.5))
    np.testing.assert_allclose(f(), np_norm_constraint(w, 1.0, eps=0.5), rtol=1e-6)
    c.set_value(np.float32(10.0))
    np.testing.assert_allclose(f(), np_norm_constraint(w, 10.0, eps=0.5), rtol=1e-6)


def test_norm_constraint_float64():
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        var = pt.dmatrix("w")
        out = norm_constraint(var, 0.5)
        assert out.dtype == "float64"
        w = np.random.default_rng(0).normal(size=(4, 3))
        got = pytensor.function([var], out)(w)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np_norm_constraint(w, 0.5), rtol=1e-12)


@functools.cache
def _compiled_norm_constraint():
    var = pt.matrix("w")
    return pytensor.function([var], norm_constraint(var, 1.5))


finite32 = st.floats(-10, 10, width=32, allow_subnormal=False)


@settings(max_examples=25, deadline=None, database=None)
@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=finite32)
)
def test_norm_constraint_properties(w):
    got = _compiled_norm_constraint()(w)
    assert got.dtype == np.float32
    before = slice_norms(w, 0)
    after = slice_norms(got, 0)
    assert np.all(after <= 1.5 * (1 + 1e-5))
    under = before <= 1.5
    scale = before / (before + EPS)
    np.testing.assert_allclose(got[:, under], w[:, under] * scale[under], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, np_norm_constraint(w, 1.5), rtol=1e-5, atol=1e-6)


# -- total_norm_constraint ---------------------------------------------------------


def test_total_norm_constraint_matches_lasagne():
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(3, 4)), rng.normal(size=(4,)), rng.normal(size=(2, 2, 2))]
    arrays = [a.astype("float32") for a in arrays]
    vars_ = [pt.tensor(f"g{i}", shape=(None,) * a.ndim) for i, a in enumerate(arrays)]
    for c in (0.5, 100.0):  # clipped, and unclipped (scaled by n / (n + eps) only)
        scaled, norm = total_norm_constraint(vars_, c, return_norm=True)
        assert [s.dtype for s in scaled] == ["float32"] * 3 and norm.dtype == "float32"
        got = pytensor.function(vars_, [*scaled, norm])(*arrays)
        expected, n = np_total_norm_constraint(arrays, c)
        for g, e in zip(got[:3], expected, strict=True):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, e, rtol=1e-5)
        np.testing.assert_allclose(got[3], n, rtol=1e-6)
    plain = total_norm_constraint(vars_, 1.0)
    assert isinstance(plain, list) and len(plain) == 3


def test_total_norm_constraint_empty_is_an_error():
    with pytest.raises(ValueError, match=r"^total_norm_constraint: tensor_vars is empty$"):
        total_norm_constraint([], 1.0)


def test_total_norm_constraint_keeps_each_dtype():
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        a, b = pt.fvector("a"), pt.dvector("b")
        (sa, sb), norm = total_norm_constraint([a, b], 1.0, return_norm=True)
        assert (sa.dtype, sb.dtype, norm.dtype) == ("float32", "float64", "float64")
        A, B = np.array([3.0], "float32"), np.array([4.0])
        got = pytensor.function([a, b], [sa, sb, norm])(A, B)
    expected, n = np_total_norm_constraint([A, B], 1.0)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    assert got[2] == n


@functools.cache
def _compiled_total_norm_constraint():
    a, b = pt.matrix("a"), pt.vector("b")
    scaled, norm = total_norm_constraint([a, b], 2.0, return_norm=True)
    return pytensor.function([a, b], [*scaled, norm])


@settings(max_examples=25, deadline=None, database=None)
@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), elements=finite32),
    hnp.arrays(np.float32, st.integers(1, 5), elements=finite32),
)
def test_total_norm_constraint_properties(a, b):
    ga, gb, norm = _compiled_total_norm_constraint()(a, b)
    assert ga.dtype == gb.dtype == np.float32
    expected, n = np_total_norm_constraint([a, b], 2.0)
    np.testing.assert_allclose(norm, n, rtol=1e-5, atol=1e-6)  # float32 squares may underflow
    joint = np.sqrt(np.sum(ga.astype("float64") ** 2) + np.sum(gb.astype("float64") ** 2))
    assert joint <= 2.0 * (1 + 1e-5)
    if n <= 2.0:
        scale = n / (n + EPS)
        np.testing.assert_allclose(ga, a * scale, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gb, b * scale, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ga, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb, expected[1], rtol=1e-5, atol=1e-6)


# -- max_norm on an updates dict ---------------------------------------------------


def test_max_norm_constrains_the_updated_values():
    graph, values = feedforward()
    w, b, w2 = graph.params["hid1.w"], graph.params["hid1.b"], graph.params["hid2.w"]
    updates = OrderedDict([(w, w * 3), (b, b * 3), (w2, w2 + 1)])
    reg = regularizers.build("max_norm", weight=1.2)
    assert reg.targets(graph) == ["hid1.w", "hid2.w", "out.w"]
    new = reg.modify_updates(graph, updates)
    assert new is not updates and updates[w2] is not new[w2]  # input left alone
    assert new[b] is updates[b]  # biases are not constrained by default
    f = pytensor.function([], [new[w], new[w2], new[b]])
    got_w, got_w2, got_b = f()
    np.testing.assert_allclose(got_w, np_norm_constraint(values["hid1.w"] * 3, 1.2), rtol=1e-5)
    np.testing.assert_allclose(got_w2, np_norm_constraint(values["hid2.w"] + 1, 1.2), rtol=1e-5)
    np.testing.assert_allclose(got_b, values["hid1.b"] * 3, rtol=1e-6)
    assert np.all(slice_norms(got_w, 0) <= 1.2 * (1 + 1e-5))


def test_max_norm_pattern_and_norm_axes():
    graph, values = feedforward()
    b = graph.params["hid1.b"]
    with pytest.raises(
        ValueError,
        match=r"^max_norm: parameter 'hid1.b' has 1 dimension\(s\); give norm_axes or a "
        r"pattern that selects 2- to 5-d weights$",
    ):
        regularizers.build("max_norm", weight=1.0, pattern="*.b").modify_updates(graph, {b: b})
    reg = regularizers.build("max_norm", weight=0.5, pattern="hid1.b", norm_axes=[0])
    assert reg.norm_axes == (0,)
    new = reg.modify_updates(graph, OrderedDict([(b, b * 4)]))
    got = pytensor.function([], new[b])()
    np.testing.assert_allclose(got, np_norm_constraint(values["hid1.b"] * 4, 0.5, (0,)), rtol=1e-5)


def test_max_norm_with_a_symbolic_limit():
    graph, values = feedforward()
    w = graph.params["out.w"]
    c = shared(0.1, "limit")
    reg = regularizers.build("max_norm", weight=c, pattern="out.w")
    f = pytensor.function([], reg.modify_updates(graph, {w: w})[w])
    np.testing.assert_allclose(f(), np_norm_constraint(values["out.w"], 0.1), rtol=1e-5)
    c.set_value(np.float32(100.0))
    np.testing.assert_allclose(f(), np_norm_constraint(values["out.w"], 100.0), rtol=1e-5)


# -- gradient clipping -----------------------------------------------------------


@pytest.fixture(scope="module")
def gradients():
    """(graph, symbolic grads by name, numpy grads by name) with three parameters."""
    rng = np.random.default_rng(4)
    shapes = OrderedDict([("hid1.w", (3, 4)), ("hid1.b", (4,)), ("out.w", (4, 2))])
    params = OrderedDict((k, shared(np.zeros(s), k)) for k, s in shapes.items())
    graph = Graph({"out:out": params["out.w"].sum()}, params)
    symbolic = OrderedDict(
        (k, pt.tensor(f"g_{k}", shape=(None,) * len(s))) for k, s in shapes.items()
    )
    # norms of about 0.2, 3.5, 6: some under and some over the limits below
    scale = {"hid1.w": 1.0, "hid1.b": 0.1, "out.w": 2.0}
    arrays = OrderedDict(
        (k, (rng.normal(size=s) * scale[k]).astype("float32")) for k, s in shapes.items()
    )
    return graph, symbolic, arrays


def _clip(graph, symbolic, arrays, reg):
    new = reg.modify_gradients(graph, symbolic)
    assert list(new) == list(symbolic) and new is not symbolic
    f = pytensor.function(list(symbolic.values()), list(new.values()), on_unused_input="ignore")
    out = OrderedDict(zip(new, f(*arrays.values()), strict=True))
    for g in out.values():
        assert g.dtype == np.float32
    return new, out


def test_max_gradient_norm_is_per_parameter(gradients):
    graph, symbolic, arrays = gradients
    c = 1.0
    norms = {k: np.linalg.norm(v.astype("float64")) for k, v in arrays.items()}
    assert min(norms.values()) < c < max(norms.values())
    _, got = _clip(graph, symbolic, arrays, regularizers.build("max_gradient_norm", weight=c))
    for k, g in arrays.items():
        expected = g.astype("float64") * min(1.0, c / norms[k])
        np.testing.assert_allclose(got[k], expected, rtol=1e-5)
        assert np.linalg.norm(got[k]) <= c * (1 + 1e-5)


def test_max_gradient_norm_of_a_zero_gradient_is_zero(gradients):
    graph, symbolic, arrays = gradients
    zeros = OrderedDict((k, np.zeros_like(v)) for k, v in arrays.items())
    _, got = _clip(graph, symbolic, zeros, regularizers.build("max_gradient_norm", weight=1.0))
    for g in got.values():
        np.testing.assert_array_equal(g, 0.0)


def test_max_gradient_norm_pattern_leaves_others_alone(gradients):
    graph, symbolic, arrays = gradients
    reg = regularizers.build("max_gradient_norm", weight=0.5, pattern="out.*")
    new, got = _clip(graph, symbolic, arrays, reg)
    assert new["hid1.w"] is symbolic["hid1.w"] and new["hid1.b"] is symbolic["hid1.b"]
    g = arrays["out.w"].astype("float64")
    np.testing.assert_allclose(got["out.w"], g * min(1, 0.5 / np.linalg.norm(g)), rtol=1e-5)


def test_max_total_gradient_norm_is_joint(gradients):
    graph, symbolic, arrays = gradients
    for c in (2.0, 1e3):
        reg = regularizers.build("max_total_gradient_norm", weight=c)
        _, got = _clip(graph, symbolic, arrays, reg)
        expected, _ = np_total_norm_constraint(list(arrays.values()), c)
        for g, e in zip(got.values(), expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5)
    # per-parameter clipping would give a different answer
    expected, _ = np_total_norm_constraint(list(arrays.values()), 2.0)
    per = arrays["hid1.b"] * min(1.0, 2.0 / np.linalg.norm(arrays["hid1.b"]))
    assert not np.allclose(expected[1], per)


def test_max_total_gradient_norm_with_a_pattern(gradients):
    graph, symbolic, arrays = gradients
    reg = regularizers.build("max_total_gradient_norm", weight=1.0, pattern=["hid1.*"])
    new, got = _clip(graph, symbolic, arrays, reg)
    assert new["out.w"] is symbolic["out.w"]
    expected, _ = np_total_norm_constraint([arrays["hid1.w"], arrays["hid1.b"]], 1.0)
    np.testing.assert_allclose(got["hid1.w"], expected[0], rtol=1e-5)
    np.testing.assert_allclose(got["hid1.b"], expected[1], rtol=1e-5)


def test_max_gradient_elem_clips(gradients):
    graph, symbolic, arrays = gradients
    _, got = _clip(graph, symbolic, arrays, regularizers.build("max_gradient_elem", weight=0.7))
    for k, g in arrays.items():
        np.testing.assert_array_equal(got[k], np.clip(g, -0.7, 0.7))
    assert any(np.any(np.abs(g) > 0.7) for g in arrays.values())


def test_clipping_with_no_parameters_is_an_error():
    graph = Graph({"out:out": pt.matrix("x")}, {})
    with pytest.raises(
        ValueError,
        match=r"^max_gradient_norm: there are no parameters in this graph; give a pattern "
        r"\(parameters are none\)$",
    ):
        regularizers.build("max_gradient_norm", weight=1.0).modify_gradients(graph, {})
