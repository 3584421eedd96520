"""One table-driven test over every registered algorithm (optax's habit).

Each algorithm must bring a parabola and the 2-D Rosenbrock function close to
their minima, and name its state ``<param>/<algo>_<slot>`` (per parameter) or
``<algo>/<slot>`` (global, e.g. ``<algo>/t``). A newly registered algorithm
is picked up by ``names()`` and runs with DEFAULT's settings unless it gets a
row in SETTINGS. float32 parameters under the suite's floatX=float32 and
warn_float64=raise, so this also checks that no rule adds float64.
"""

import re

import numpy as np
import pytensor
import pytest
from pytensor.tensor.random.type import RandomGeneratorType

from trainkit import optimizers

DEFAULT = {
    "parabola": {"learning_rate": 0.1},
    "rosenbrock": {"learning_rate": 0.01},
    "rosenbrock_steps": 3000,
}
# Per-algorithm hyperparameters (merged over DEFAULT) and step budgets, about
# 1.5 times the steps each needed to meet the Rosenbrock criterion.
SETTINGS = {
    "sgd": {"rosenbrock": {"learning_rate": 0.002}, "rosenbrock_steps": 3500},
    "momentum": {"rosenbrock": {"learning_rate": 0.002}, "rosenbrock_steps": 600},
    "nesterov_momentum": {"rosenbrock": {"learning_rate": 0.001}, "rosenbrock_steps": 800},
    "nag": {"rosenbrock": {"learning_rate": 0.001}, "rosenbrock_steps": 800},
    "adagrad": {
        "parabola": {"learning_rate": 1.0},
        "rosenbrock": {"learning_rate": 0.2},
        "rosenbrock_steps": 2800,
    },
    "rmsprop": {"rosenbrock": {"learning_rate": 0.005}, "rosenbrock_steps": 2500},
    "adadelta": {
        "parabola": {"learning_rate": 1.0, "epsilon": 1e-3},
        "rosenbrock": {"learning_rate": 0.1, "rho": 0.9},
        "rosenbrock_steps": 4500,
    },
    "adam": {"rosenbrock": {"learning_rate": 0.03}, "rosenbrock_steps": 1200},
    "adamax": {"rosenbrock": {"learning_rate": 0.2}, "rosenbrock_steps": 1200},
    "amsgrad": {"rosenbrock": {"learning_rate": 0.1}, "rosenbrock_steps": 800},
    "rprop": {
        "parabola": {"learning_rate": 0.01, "rprop_increase": 1.2, "rprop_decrease": 0.5},
        "rosenbrock_steps": 1200,
    },
    # a large epsilon keeps a chance small H r from making a huge step
    "esgd": {
        "parabola": {},
        "rosenbrock": {"learning_rate": 0.3, "epsilon": 1.0},
        "rosenbrock_steps": 4500,
    },
    "nadam": {"rosenbrock_steps": 2500},
    "radam": {"rosenbrock": {"learning_rate": 0.005, "beta2": 0.99}, "rosenbrock_steps": 1500},
    "adamw": {"rosenbrock": {"learning_rate": 0.02}, "rosenbrock_steps": 1800},
    "lion": {
        # sign steps oscillate by about 2 * learning_rate around the minimum
        "parabola": {"learning_rate": 0.008, "beta2": 0.9},
        "rosenbrock": {"learning_rate": 0.002},
        "rosenbrock_steps": 1500,
    },
}
PARABOLA_STEPS = 400


def settings(algo, key):
    """DEFAULT[key], updated by the algorithm's row."""
    value = SETTINGS.get(algo, {}).get(key, DEFAULT[key])
    return {**DEFAULT[key], **value} if isinstance(value, dict) else value


def check_state_names(algo, updates, params):
    """Every non-parameter update is named state, uniquely, by the convention."""
    names = [v.name for v in updates if v not in params.values()]
    assert all(names) and len(set(names)) == len(names), names
    keys = "|".join(re.escape(k) for k in params)
    pattern = rf"(?:{keys})/{algo}_[a-z0-9_]+|{algo}/[a-z0-9_]+"
    for name in names:
        assert re.fullmatch(pattern, name), f"{algo}: state {name!r} breaks the naming convention"
    if algo in ("adam", "adamax", "amsgrad", "nadam", "radam", "adamw"):
        assert f"{algo}/t" in names


@pytest.mark.parametrize("algo", optimizers.names())
def test_converges_on_a_parabola(algo):
    curvature = np.array([1.0, 3.0], dtype="float32")
    center = np.array([1.0, -2.0], dtype="float32")
    w = pytensor.shared(np.zeros(2, dtype="float32"), name="para.w")
    loss = 0.5 * (curvature * (w - center) ** 2).sum()
    updates = optimizers.build(algo, loss, [w], **settings(algo, "parabola"))
    check_state_names(algo, updates, {"para.w": w})
    tensors = [(v, e) for v, e in updates.items() if hasattr(v.type, "dtype")]
    assert all(v.dtype == e.dtype and v.ndim == e.ndim for v, e in tensors)
    step = pytensor.function([], loss, updates=updates)
    for _ in range(PARABOLA_STEPS):
        step()
    assert w.get_value().dtype == np.float32
    np.testing.assert_allclose(w.get_value(), center, atol=2e-2)


@pytest.mark.parametrize("algo", optimizers.names())
def test_converges_on_rosenbrock(algo):
    x = pytensor.shared(np.float32(-0.5))
    y = pytensor.shared(np.float32(0.5))
    loss = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    params = {"ros.x": x, "ros.y": y}
    updates = optimizers.build(algo, loss, params, **settings(algo, "rosenbrock"))
    check_state_names(algo, updates, params)
    for var in updates:  # random generators (esgd's) drawn from a fixed seed
        if isinstance(var.type, RandomGeneratorType):
            var.set_value(np.random.default_rng(1))
    step = pytensor.function([], loss, updates=updates)
    start = step()
    for _ in range(settings(algo, "rosenbrock_steps")):
        final = step()
    assert final < 1e-2 * start
    np.testing.assert_allclose([x.get_value(), y.get_value()], [1.0, 1.0], atol=0.1)
