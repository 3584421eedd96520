"""dtypes and hyperparameter kinds, plus a Numba-backend check.

- float32 parameters get float32 updates and float32 state even under
  floatX=float64, with no float64 variable anywhere in the update graph;
- float64 parameters work (also covered by the float64 trajectories in
  test_optimizers_reference.py) and mixed dtypes each keep their own;
- hyperparameters may be Python floats, numpy float64 scalars or shared
  variables, and changing a shared learning rate after compiling changes the
  step without recompiling.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

from trainkit import optimizers


def _params(dtype):
    w = pytensor.shared(np.array([[0.5, -1.0], [1.5, 2.0]], dtype=dtype), name="w")
    b = pytensor.shared(np.array([1.0, -0.5, 0.25], dtype=dtype), name="b")
    return {"hid.w": w, "hid.b": b}


def _loss(params):
    w, b = params["hid.w"], params["hid.b"]
    return (w**2).sum() + (b**4).sum() + (w[0] * b[:2]).sum()


def _hyper(algo, **extra):
    hyper = {"learning_rate": 0.01} if "learning_rate" in optimizers.hyperparameters(algo) else {}
    if "seed" in optimizers.hyperparameters(algo):
        hyper["seed"] = 0
    return {**hyper, **extra}


def _tensor_updates(updates):
    return [(v, e) for v, e in updates.items() if hasattr(v.type, "dtype")]


@pytest.mark.parametrize("algo", optimizers.names())
def test_float32_params_stay_float32_under_float64_floatx(algo):
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        params = _params("float32")
        updates = optimizers.build(algo, _loss(params), params, **_hyper(algo))
        for var, expr in _tensor_updates(updates):
            if var.dtype.startswith("float"):
                assert var.dtype == expr.dtype == "float32", var.name
        float64 = [
            v
            for v in ancestors(list(updates.values()))
            if getattr(v.type, "dtype", "") == "float64"
        ]
        assert not float64, f"{algo} computes in float64: {float64[:3]}"
        step = pytensor.function([], [], updates=updates)
        step()
        step()
    for var, _ in _tensor_updates(updates):
        value = var.get_value()
        assert np.all(np.isfinite(value)), var.name
        if var.dtype.startswith("float"):
            assert value.dtype == np.float32, var.name
    assert not np.allclose(params["hid.b"].get_value(), [1.0, -0.5, 0.25])


@pytest.mark.parametrize("algo", optimizers.names())
def test_mixed_float32_and_float64_params_keep_their_dtypes(algo):
    with pytensor.config.change_flags(warn_float64="ignore"):
        params = {**_params("float64")}
        params["hid.b"] = pytensor.shared(np.array([1.0, -0.5], dtype="float32"), name="b")
        loss = (params["hid.w"] ** 2).sum() + pt.cast((params["hid.b"] ** 4).sum(), "float64")
        updates = optimizers.build(algo, loss, params, **_hyper(algo))
        step = pytensor.function([], [], updates=updates)
        step()
    for var, expr in _tensor_updates(updates):
        assert var.dtype == expr.dtype == var.get_value().dtype, var.name
        name = var.name or ""
        if name == "w" or name.startswith("hid.w/"):
            assert var.dtype == "float64", name
        if name == "b" or name.startswith("hid.b/"):
            assert var.dtype == "float32", name


def _run_adam(hyper, steps=5):
    params = _params("float32")
    updates = optimizers.adam(_loss(params), params, **hyper)
    step = pytensor.function([], [], updates=updates)
    for _ in range(steps):
        step()
    return np.concatenate([p.get_value().ravel() for p in params.values()])


def test_hyperparameters_as_floats_numpy_scalars_or_shared_variables():
    """Under the suite's warn_float64=raise: numpy float64 scalars add no float64."""
    values = {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6}
    as_floats = _run_adam(values)
    as_numpy = _run_adam({k: np.float64(v) for k, v in values.items()})
    as_shared = _run_adam({k: pytensor.shared(np.float32(v)) for k, v in values.items()})
    np.testing.assert_array_equal(as_floats, as_numpy)
    np.testing.assert_allclose(as_floats, as_shared, rtol=1e-6)
    assert not np.allclose(as_floats, _run_adam({**values, "beta1": 0.5}))


def test_float64_shared_hyperparameters_are_cast_to_the_param_dtype():
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        params = _params("float32")
        lr = pytensor.shared(0.05)
        assert lr.dtype == "float64"
        updates = optimizers.adamw(_loss(params), params, learning_rate=lr, decoupled_decay=lr)
        assert all(e.dtype == "float32" for v, e in _tensor_updates(updates) if v.name != "adamw/t")


@pytest.mark.parametrize("algo", [a for a in optimizers.names() if a != "rprop"])
def test_changing_a_shared_learning_rate_changes_the_step(algo):
    """A learning rate set to 0 after compiling stops the parameters.

    Momentum is switched off where there is one, since a velocity keeps moving.
    """
    params = _params("float32")
    lr = pytensor.shared(np.float32(0.01), name="lr")
    hyper = _hyper(algo, learning_rate=lr)
    if "momentum" in optimizers.hyperparameters(algo):
        hyper["momentum"] = 0.0
    step = pytensor.function([], [], updates=optimizers.build(algo, _loss(params), params, **hyper))
    step()
    before = {k: p.get_value() for k, p in params.items()}
    lr.set_value(np.float32(0.0))
    step()
    for key, param in params.items():
        np.testing.assert_array_equal(param.get_value(), before[key], err_msg=key)
    lr.set_value(np.float32(0.01))
    step()
    assert not np.array_equal(params["hid.b"].get_value(), before["hid.b"])


def test_sgd_step_follows_a_shared_learning_rate_exactly():
    w = pytensor.shared(np.array([1.0, -2.0], dtype="float32"), name="w")
    lr = pytensor.shared(np.float32(0.25))
    step = pytensor.function([], [], updates=optimizers.sgd((w**2).sum(), [w], lr))
    step()
    np.testing.assert_allclose(w.get_value(), [0.5, -1.0])
    lr.set_value(np.float32(0.5))
    step()
    np.testing.assert_allclose(w.get_value(), [0.0, 0.0])


def test_rprop_reads_a_shared_learning_rate_when_built():
    w = pytensor.shared(np.array([1.0, -1.0], dtype="float32"), name="w")
    lr = pytensor.shared(np.float32(0.25))
    updates = optimizers.rprop((w**2).sum(), [w], learning_rate=lr)
    lr.set_value(np.float32(10.0))
    step = pytensor.function([], [], updates=updates)
    step()
    np.testing.assert_allclose(w.get_value(), [0.75, -0.75])
    steps = {v.name: v for v in updates}["w/rprop_step"]
    np.testing.assert_allclose(steps.get_value(), [0.25, 0.25])


@pytest.mark.numba
def test_adam_and_adamw_on_the_numba_backend():
    """One function holding both rules, compiled with mode="NUMBA", vs numpy."""
    start = np.array([0.5, -1.5, 2.0], dtype="float32")
    x = pytensor.shared(start.copy(), name="x")
    y = pytensor.shared(start.copy(), name="y")
    loss = lambda p: (pt.log(pt.cosh(p)) + p**4).sum()  # noqa: E731
    hyper = {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}
    updates = optimizers.adam(loss(x), [x], **hyper)
    updates.update(optimizers.adamw(loss(y), [y], decoupled_decay=0.3, **hyper))
    step = pytensor.function([], [], updates=updates, mode="NUMBA")

    def grad(p):
        return np.tanh(p) + 4 * p**3

    b1, b2, lr, eps = hyper["beta1"], hyper["beta2"], hyper["learning_rate"], hyper["epsilon"]
    ref_x, ref_y = start.astype(float), start.astype(float)
    mx = vx = my = vy = np.zeros(3)
    for t in range(1, 21):
        step()
        g = grad(ref_x)
        mx, vx = b1 * mx + (1 - b1) * g, b2 * vx + (1 - b2) * g * g
        # Lasagne's Adam: epsilon added before bias-correcting the root
        ref_x = ref_x - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * mx / (np.sqrt(vx) + eps)
        g = grad(ref_y)
        ref_y = ref_y * (1 - lr * 0.3)
        my, vy = b1 * my + (1 - b1) * g, b2 * vy + (1 - b2) * g * g
        # PyTorch's AdamW: epsilon added after bias-correcting the root
        ref_y = ref_y - lr / (1 - b1**t) * my / (np.sqrt(vy / (1 - b2**t)) + eps)
        np.testing.assert_allclose(x.get_value(), ref_x, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(y.get_value(), ref_y, rtol=2e-5, atol=1e-6)
    assert x.get_value().dtype == y.get_value().dtype == np.float32
