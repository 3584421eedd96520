"""Every update rule against values computed by an independent implementation.

1. Lasagne's published check: ten steps on sum([0.1, 0.2, 0.3] * X**2) for two
   parameter vectors starting at ones, compared with the values torch.optim
   computed (hard-coded in Lasagne's tests, see TORCH_VALUES).
2. Every registered algorithm against a numpy implementation of its rule,
   written here from the papers / PyTorch, over 50 steps of a non-quadratic
   loss, comparing the whole parameter trajectory. ESGD draws random vectors;
   they are read back from the compiled function, and the numpy reference
   multiplies them by the analytic Hessian.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.op import RandomVariable

from trainkit import optimizers

# Lasagne, lasagne/tests/test_updates.py (TestUpdateFunctions.torch_values),
# computed with torch.optim by https://gist.github.com/ebenolson/931e879ed38f257253d2
# The adamax row is not in the copy of Lasagne's test we could read; it is taken
# from two third-party copies of the same table that add it (same numbers in
# both, learning rate 0.01). Lasagne has no Torch values for amsgrad: its row
# reuses adam's, which is exact here because v_t only grows on this problem, so
# max(v_hat, v_t) = v_t and AMSGrad takes Adam's steps. The numpy trajectories
# below test amsgrad where the maximum matters.
TORCH_VALUES = {
    "sgd": [0.81707280688755, 0.6648326359915, 0.5386151140949],
    "momentum": [0.6848486952183, 0.44803321781003, 0.27431190123502],
    "nesterov_momentum": [0.67466543592725, 0.44108468114241, 0.2769002108997],
    "adagrad": [0.55373120047759, 0.55373120041518, 0.55373120039438],
    "rmsprop": [0.83205403985348, 0.83205322744821, 0.83205295664444],
    "adadelta": [0.95453237704725, 0.9545237471374, 0.95452214847397],
    "adam": [0.90034972009036, 0.90034967993061, 0.90034966654402],
    "adamax": [0.90211749000754, 0.90211748762402, 0.90211748682951],
    "amsgrad": [0.90034972009036, 0.90034967993061, 0.90034966654402],
}
TORCH_HYPER = {
    "sgd": {"learning_rate": 0.1},
    "momentum": {"learning_rate": 0.1, "momentum": 0.5},
    "nesterov_momentum": {"learning_rate": 0.1, "momentum": 0.5},
    "adagrad": {"learning_rate": 0.1},
    "rmsprop": {"learning_rate": 0.01},
    "adadelta": {},
    "adam": {"learning_rate": 0.01},
    "adamax": {"learning_rate": 0.01},
    "amsgrad": {"learning_rate": 0.01},
}


@pytest.mark.parametrize("algo", sorted(TORCH_VALUES))
def test_lasagne_torch_values(algo):
    weights = np.asarray([0.1, 0.2, 0.3], dtype="float32")
    a = pytensor.shared(np.ones(3, dtype="float32"))
    b = pytensor.shared(np.ones(3, dtype="float32"))
    loss = (weights * a**2).sum() + (weights * b**2).sum()
    updates = getattr(optimizers, algo)(loss, [a, b], **TORCH_HYPER[algo])
    step = pytensor.function([], [], updates=updates)
    for _ in range(10):
        step()
    assert a.get_value().dtype == np.float32
    np.testing.assert_allclose(a.get_value(), b.get_value())
    assert np.allclose(a.get_value(), TORCH_VALUES[algo])


# ---------------------------------------------------------------------------
# numpy references: step(p, g, state, t, h, hv) -> new p; state is a dict
# per parameter, t counts from 1, hv is the Hessian-vector product (ESGD).


def _zeros(state, p, *keys):
    return [state.setdefault(k, np.zeros_like(p)) for k in keys]


def ref_sgd(p, g, s, t, h, hv):
    return p - h["learning_rate"] * g


def ref_momentum(p, g, s, t, h, hv):
    # PyTorch's form: buffer b = mu b + g, p -= lr b (same path at constant lr)
    s["b"] = h["momentum"] * s.get("b", 0.0) + g
    return p - h["learning_rate"] * s["b"]


def ref_look_ahead_nesterov(p, g, s, t, h, hv):
    # Sutskever et al.'s form on theta = p - mu v: g is the gradient at the
    # look-ahead point theta + mu v, which is the stored p.
    mu, lr = h["momentum"], h["learning_rate"]
    (v,) = _zeros(s, p, "v")
    theta = p - mu * v
    v = s["v"] = mu * v - lr * g
    theta = theta + v
    return theta + mu * v


def ref_adagrad(p, g, s, t, h, hv):
    s["a"] = s.get("a", 0.0) + g * g
    return p - h["learning_rate"] * g / np.sqrt(s["a"] + h["epsilon"])


def ref_rmsprop(p, g, s, t, h, hv):
    rho = h["rho"]
    s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g * g
    return p - h["learning_rate"] * g / np.sqrt(s["a"] + h["epsilon"])


def ref_adadelta(p, g, s, t, h, hv):
    rho, eps = h["rho"], h["epsilon"]
    a, d = _zeros(s, p, "a", "d")
    a = s["a"] = rho * a + (1 - rho) * g * g
    delta = np.sqrt(d + eps) / np.sqrt(a + eps) * g
    s["d"] = rho * d + (1 - rho) * delta * delta
    return p - h["learning_rate"] * delta


def _moments(s, p, g, b1, b2):
    m, v = _zeros(s, p, "m", "v")
    s["m"] = b1 * m + (1 - b1) * g
    s["v"] = b2 * v + (1 - b2) * g * g
    return s["m"], s["v"]


def ref_adam(p, g, s, t, h, hv):
    # the paper's bias-corrected form with epsilon-hat = eps * sqrt(1 - b2^t)
    b1, b2 = h["beta1"], h["beta2"]
    m, v = _moments(s, p, g, b1, b2)
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return p - h["learning_rate"] * m_hat / (np.sqrt(v_hat) + h["epsilon"] / np.sqrt(1 - b2**t))


def ref_amsgrad(p, g, s, t, h, hv):
    b1, b2 = h["beta1"], h["beta2"]
    m, v = _moments(s, p, g, b1, b2)
    s["vmax"] = np.maximum(s.get("vmax", 0.0), v)
    s["max_was_active"] = s.get("max_was_active", False) or bool((s["vmax"] > v).any())
    m_hat, v_hat = m / (1 - b1**t), s["vmax"] / (1 - b2**t)
    return p - h["learning_rate"] * m_hat / (np.sqrt(v_hat) + h["epsilon"] / np.sqrt(1 - b2**t))


def ref_adamax(p, g, s, t, h, hv):
    b1 = h["beta1"]
    m, u = _zeros(s, p, "m", "u")
    m = s["m"] = b1 * m + (1 - b1) * g
    u = s["u"] = np.maximum(h["beta2"] * u, np.abs(g))
    return p - h["learning_rate"] / (1 - b1**t) * m / (u + h["epsilon"])


def ref_rprop(p, g, s, t, h, hv):
    step = s.setdefault("step", np.full_like(p, h["learning_rate"]))
    prev = s.setdefault("prev", np.zeros_like(p))
    new_step, new_g, new_p = step.copy(), g.copy(), p.copy()
    for i in np.ndindex(p.shape):
        if g[i] * prev[i] > 0:
            new_step[i] = min(step[i] * h["rprop_increase"], h["rprop_max_step"])
        elif g[i] * prev[i] < 0:
            new_step[i] = max(step[i] * h["rprop_decrease"], h["rprop_min_step"])
            new_g[i] = 0.0
        new_p[i] = p[i] - np.sign(new_g[i]) * new_step[i]
    s["step"], s["prev"] = new_step, new_g
    return new_p


def ref_esgd(p, g, s, t, h, hv):
    rho = h["rho"]
    s["d"] = rho * s.get("d", 0.0) + (1 - rho) * hv * hv
    return p - h["learning_rate"] * g / (np.sqrt(s["d"]) + h["epsilon"])


def ref_nadam(p, g, s, t, h, hv):
    b1, b2, psi = h["beta1"], h["beta2"], h["momentum_decay"]
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    s["prod"] = s.get("prod", 1.0) * mu
    m, v = _moments(s, p, g, b1, b2)
    denom = np.sqrt(v / (1 - b2**t)) + h["epsilon"]
    lr = h["learning_rate"]
    p = p - lr * (1 - mu) / (1 - s["prod"]) * g / denom
    return p - lr * mu_next / (1 - s["prod"] * mu_next) * m / denom


def ref_radam(p, g, s, t, h, hv):
    b1, b2, lr = h["beta1"], h["beta2"], h["learning_rate"]
    m, v = _moments(s, p, g, b1, b2)
    m_hat = m / (1 - b1**t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t > 5:
        rect = np.sqrt(
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )
        s["rectified_steps"] = s.get("rectified_steps", 0) + 1
        return p - lr * m_hat * rect * np.sqrt(1 - b2**t) / (np.sqrt(v) + h["epsilon"])
    return p - lr * m_hat


def ref_adamw(p, g, s, t, h, hv):
    b1, b2, lr = h["beta1"], h["beta2"], h["learning_rate"]
    p = p * (1 - lr * h["decoupled_decay"])
    m, v = _moments(s, p, g, b1, b2)
    return p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + h["epsilon"])


def ref_lion(p, g, s, t, h, hv):
    (m,) = _zeros(s, p, "m")
    c = h["beta1"] * m + (1 - h["beta1"]) * g
    s["m"] = h["beta2"] * m + (1 - h["beta2"]) * g
    return p - h["learning_rate"] * (np.sign(c) + h["decoupled_decay"] * p)


# algorithm -> (numpy rule, hyperparameters chosen to exercise every branch)
REFERENCES = {
    "sgd": (ref_sgd, {"learning_rate": 0.05}),
    "momentum": (ref_momentum, {"learning_rate": 0.05, "momentum": 0.8}),
    "nesterov_momentum": (ref_look_ahead_nesterov, {"learning_rate": 0.05, "momentum": 0.8}),
    "nag": (ref_look_ahead_nesterov, {"learning_rate": 0.05, "momentum": 0.8}),
    "adagrad": (ref_adagrad, {"learning_rate": 0.3, "epsilon": 1e-3}),
    "rmsprop": (ref_rmsprop, {"learning_rate": 0.05, "rho": 0.8, "epsilon": 1e-3}),
    "adadelta": (ref_adadelta, {"learning_rate": 0.9, "rho": 0.9, "epsilon": 1e-3}),
    "adam": (ref_adam, {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}),
    "amsgrad": (ref_amsgrad, {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.8, "epsilon": 1e-3}),
    "adamax": (ref_adamax, {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.9, "epsilon": 1e-3}),
    "rprop": (
        ref_rprop,
        {
            "learning_rate": 0.05,
            "rprop_increase": 1.2,
            "rprop_decrease": 0.5,
            "rprop_min_step": 1e-3,
            "rprop_max_step": 0.3,
        },
    ),
    "esgd": (ref_esgd, {"learning_rate": 0.05, "rho": 0.9, "epsilon": 1e-3}),
    "nadam": (
        ref_nadam,
        {"learning_rate": 0.05, "beta2": 0.95, "epsilon": 1e-3, "momentum_decay": 0.2},
    ),
    "radam": (ref_radam, {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}),
    "adamw": (ref_adamw, {"learning_rate": 0.05, "beta2": 0.95, "decoupled_decay": 0.3}),
    "lion": (
        ref_lion,
        {"learning_rate": 0.02, "beta1": 0.8, "beta2": 0.9, "decoupled_decay": 0.5},
    ),
}

# loss = sum over both parameters of log(cosh(a (x - c))) + 0.1 x^4
START = {"A": np.array([1.5, -0.5, 2.0]), "B": np.array([[0.3, -1.2], [0.8, 2.5]])}
SCALE = {"A": np.array([1.0, 2.0, 0.5]), "B": np.array([[1.5, 0.7], [1.0, 3.0]])}
SHIFT = {"A": np.array([0.2, -0.3, 0.5]), "B": np.array([[-0.4, 0.1], [0.6, -0.2]])}


def np_grad(key, x):
    a, c = SCALE[key], SHIFT[key]
    return a * np.tanh(a * (x - c)) + 0.4 * x**3


def np_hessian_diagonal(key, x):
    a, c = SCALE[key], SHIFT[key]
    return a**2 * (1 - np.tanh(a * (x - c)) ** 2) + 1.2 * x**2


def random_vectors(updates):
    """The random draws an update graph makes (outputs of RandomVariable nodes)."""
    return [
        v
        for v in ancestors(list(updates.values()))
        if v.owner is not None
        and isinstance(v.owner.op, RandomVariable)
        and v is v.owner.outputs[1]
    ]


def random_draws(updates):
    """The random draws, as {ndim: variable} (one per parameter here)."""
    return {d.ndim: d for d in random_vectors(updates)}


def test_every_registered_algorithm_has_a_numpy_reference():
    assert set(optimizers.names()) <= set(REFERENCES), "add a numpy reference for it"


@pytest.mark.parametrize("algo", sorted(REFERENCES))
def test_trajectory_matches_numpy(algo):
    """50 steps in float64 (params float64 under floatX=float32), whole path."""
    rule, hyper = REFERENCES[algo]
    defaults = {k: v for k, v in optimizers.hyperparameters(algo).items() if k != "seed"}
    h = {**defaults, **hyper}
    with pytensor.config.change_flags(warn_float64="ignore"):
        shared = {k: pytensor.shared(v.copy(), name=k) for k, v in START.items()}
        loss = sum(
            (
                pt.log(pt.cosh(SCALE[k] * (x - SHIFT[k])))
                + pt.constant(0.1, dtype="float64") * x**4
            ).sum()
            for k, x in shared.items()
        )
        updates = optimizers.build(algo, loss, shared, **hyper)
        draws = random_draws(updates)
        keys = sorted(shared, key=lambda k: shared[k].ndim)
        outputs = [draws[shared[k].ndim] for k in keys] if draws else []
        step = pytensor.function([], outputs, updates=updates)
    assert (algo == "esgd") == bool(draws)
    params = {k: v.copy() for k, v in START.items()}
    states = {k: {} for k in START}
    for t in range(1, 51):
        r = dict(zip(keys, step(), strict=False))  # no draws: {}
        for k in params:
            hv = np_hessian_diagonal(k, params[k]) * r[k] if r else None
            params[k] = rule(params[k], np_grad(k, params[k]), states[k], t, h, hv)
            np.testing.assert_allclose(
                shared[k].get_value(), params[k], rtol=1e-9, atol=1e-12, err_msg=f"{k} at {t}"
            )
    moved = max(np.abs(params[k] - START[k]).max() for k in START)
    assert moved > 0.1, "the test problem should move the parameters"
    if algo == "amsgrad":
        assert any(s["max_was_active"] for s in states.values())
    if algo == "radam":
        assert all(0 < s["rectified_steps"] < 50 for s in states.values())


def test_esgd_curvature_is_a_running_mean_of_squared_hessian_products():
    """Quadratic loss coupling two parameters: H r = Q r exactly, cross terms included.

    Checks D after each of five steps against numpy, using the random vectors r
    read back from the compiled function, and that the generator advances.
    """
    rng = np.random.default_rng(0)
    root = rng.normal(size=(5, 5))
    q = (root @ root.T + 5 * np.eye(5)).astype("float32")
    x = pytensor.shared(np.linspace(-1, 1, 2).astype("float32"), name="x")
    y = pytensor.shared(np.linspace(0.5, 2, 3).astype("float32"), name="y")
    z = pt.concatenate([x, y])
    loss = 0.5 * (z @ pt.constant(q) @ z)
    rho = 0.75
    updates = optimizers.esgd(loss, {"x": x, "y": y}, learning_rate=0.0, rho=rho)
    names = {v.name: v for v in updates}
    assert {"x/esgd_curvature", "y/esgd_curvature", "esgd/rng"} <= set(names)
    vectors = random_vectors(updates)
    assert sorted(v.ndim for v in vectors) == [1, 1]
    step = pytensor.function([], vectors, updates=updates)
    expected = np.zeros(5)
    seen = []
    for _ in range(5):
        drawn = sorted(step(), key=len)
        r = np.concatenate(drawn)
        seen.append(r)
        expected = rho * expected + (1 - rho) * (q.astype(float) @ r) ** 2
        d = np.concatenate(
            [names["x/esgd_curvature"].get_value(), names["y/esgd_curvature"].get_value()]
        )
        np.testing.assert_allclose(d, expected, rtol=1e-5)
    assert not np.allclose(seen[0], seen[1])
    np.testing.assert_array_equal(x.get_value(), np.linspace(-1, 1, 2).astype("float32"))
