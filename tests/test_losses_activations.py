"""Every loss and activation against numpy (and published constants), not against itself."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from trainkit.layers import activations
from trainkit.models import losses


@pytest.fixture(autouse=True)
def float64():
    """These references are float64 (the suite raises on float64 elsewhere)."""
    with pytensor.config.change_flags(warn_float64="ignore", floatX="float64"):
        yield


def evaluate(expression, inputs, values):
    return pytensor.function(inputs, expression)(*values)


# -- activations ----------------------------------------------------------------------

Z = np.array([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0], "float64")
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805  # Klambauer et al. 2017, eq. 14


def _erf(v):
    return np.vectorize(math.erf)(v)


NUMPY = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.exp(z) - 1),
    "selu": lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * (np.exp(z) - 1)),
    "gelu": lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "softplus": lambda z: np.log1p(np.exp(z)),
    "softsign": lambda z: z / (1 + np.abs(z)),
}


@pytest.mark.parametrize("name", sorted(NUMPY))
def test_activation_matches_numpy(name):
    z = pt.vector("z", dtype="float64")
    got = evaluate(activations.get(name)(z), [z], [Z])
    np.testing.assert_allclose(got, NUMPY[name](Z), rtol=1e-12, atol=1e-15)


def test_gelu_is_the_tanh_approximation_of_z_phi_z():
    z = pt.vector("z", dtype="float64")
    got = evaluate(activations.get("gelu")(z), [z], [Z])
    exact = 0.5 * Z * (1 + _erf(Z / np.sqrt(2)))
    np.testing.assert_allclose(got, exact, atol=2e-3)  # Hendrycks & Gimpel: within 1e-3-ish


def test_softmax_matches_numpy_over_the_last_axis():
    z = pt.matrix("z", dtype="float64")
    values = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1000.0]])
    got = evaluate(activations.get("softmax")(z), [z], [values])
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, shifted / shifted.sum(axis=1, keepdims=True), rtol=1e-12)


def test_every_activation_keeps_float32():
    with pytensor.config.change_flags(warn_float64="raise", floatX="float32"):
        z = pt.vector("z", dtype="float32")
        for name in activations.names():
            assert activations.get(name)(z).dtype == "float32", name


# -- losses ---------------------------------------------------------------------------


def case(rng, n=6, k=4):
    pre = rng.normal(size=(n, k))
    target = rng.normal(size=(n, k))
    weights = rng.uniform(0.1, 2.0, size=n)
    return pre, target, weights


def symbolic(loss, out_fn, pre, target, weights, target_dtype="float64"):
    p = pt.matrix("pre", dtype="float64")
    t = pt.tensor("t", dtype=target_dtype, shape=(None,) * target.ndim)
    inputs, values = [p, t], [pre, target]
    w = None
    if weights is not None:
        w = pt.vector("w", dtype="float64")
        inputs.append(w)
        values.append(weights)
    p = pt.specify_shape(p, (None, pre.shape[1]))
    return float(evaluate(losses.get(loss)(p, out_fn(p), t, w), inputs, values))


def weighted_mean(errors, weights):
    return errors.mean() if weights is None else (weights * errors).sum() / weights.sum()


@pytest.mark.parametrize("weighted", [False, True])
def test_mse_and_mae_match_numpy(rng, weighted):
    pre, target, weights = case(rng)
    weights = weights if weighted else None
    got = symbolic("mse", lambda p: p, pre, target, weights)
    assert got == pytest.approx(weighted_mean(((pre - target) ** 2).mean(axis=1), weights))
    got = symbolic("mae", lambda p: p, pre, target, weights)
    assert got == pytest.approx(weighted_mean(np.abs(pre - target).mean(axis=1), weights))


@pytest.mark.parametrize("weighted", [False, True])
def test_xent_is_minus_log_softmax_of_the_label(rng, weighted):
    pre, _, weights = case(rng)
    labels = rng.integers(0, pre.shape[1], size=len(pre))
    weights = weights if weighted else None
    got = symbolic("xent", lambda p: pt.special.softmax(p, axis=-1), pre, labels, weights, "int64")
    logp = pre - np.log(np.exp(pre).sum(axis=1, keepdims=True))
    errors = -logp[np.arange(len(pre)), labels]
    assert got == pytest.approx(weighted_mean(errors, weights), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_xent_matches_the_textbook_formula(rng, weighted):
    pre, _, weights = case(rng)
    target = rng.uniform(0, 1, size=pre.shape)
    weights = weights if weighted else None
    got = symbolic("binary_xent", pt.sigmoid, pre, target, weights)
    s = 1 / (1 + np.exp(-pre))
    errors = (-(target * np.log(s) + (1 - target) * np.log(1 - s))).mean(axis=1)
    assert got == pytest.approx(weighted_mean(errors, weights), rel=1e-10)


def test_binary_xent_does_not_overflow_for_large_pre_activations():
    pre = np.array([[800.0, -800.0]])
    target = np.array([[0.0, 1.0]])
    assert symbolic("binary_xent", pt.sigmoid, pre, target, None) == pytest.approx(800.0)


def test_all_zero_weights_count_for_nothing(rng):
    pre, target, _ = case(rng)
    assert symbolic("mse", lambda p: p, pre, target, np.zeros(len(pre))) == 0.0
