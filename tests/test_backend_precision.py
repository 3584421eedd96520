"""float64 and float32 networks in one process under JAX (issue 15).

JAX's 64-bit mode is a process-wide flag; trainkit scopes it to each call of
a compiled function (:func:`trainkit.backend.precision`), so training a
float64 network does not break a later float32 one, and the float64 one
keeps its precision after the float32 one ran.
"""

import numpy as np
import pytest

import trainkit
from trainkit import backend

pytest.importorskip("jax")


def data(dtype, n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return [x.astype(dtype), (x @ np.array([[1.0], [-2.0], [0.5]])).astype(dtype)]


def forward(net, x):
    """The linear model's output in float64 numpy, the reference."""
    w = net.graph().params["out.w"].get_value()
    b = net.graph().params["out.b"].get_value()
    return np.asarray(x, "float64") @ np.asarray(w, "float64") + np.asarray(b, "float64")


def train(net, dtype, updates):
    net.train(
        data(dtype), algo="sgd", learning_rate=0.1, max_updates=updates, progress=False, log=False
    )


@pytest.fixture
def float64_allowed():
    import pytensor

    with pytensor.config.change_flags(warn_float64="ignore"):
        yield


def test_float64_then_float32_then_float64_in_one_process(float64_allowed):
    import jax

    before = jax.config.jax_enable_x64
    wide = trainkit.Regressor([3, 1], dtype="float64", mode="JAX")
    train(wide, "float64", 3)
    narrow = trainkit.Regressor([3, 1], mode="JAX")
    train(narrow, "float32", 3)  # failed: "Matrix(float32...) cannot store ... float64"
    assert narrow.graph().params["out.w"].get_value().dtype == np.float32
    assert narrow.predict(data("float32")[0]).dtype == np.float32
    train(wide, "float64", 6)
    x = data("float64")[0] * (1 + 1e-12)
    out = wide.predict(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, forward(wide, x), rtol=1e-14, atol=1e-14)
    assert jax.config.jax_enable_x64 == before  # the process-wide flag is left alone


def test_precision_is_scoped():
    import jax

    before = jax.config.jax_enable_x64
    with backend.precision("JAX", True):
        assert jax.config.jax_enable_x64
    with backend.precision("JAX", False):
        assert not jax.config.jax_enable_x64
    assert jax.config.jax_enable_x64 == before
