"""The optimizer registry and the errors it raises.

Messages follow the project's one shape: what was wrong, the value given,
what is allowed, and the closest valid choice.
"""

import inspect
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from trainkit import optimizers
from trainkit.optimizers import registry

LASAGNE_SIGNATURES = {
    "sgd": {"learning_rate": inspect.Parameter.empty},
    "momentum": {"learning_rate": inspect.Parameter.empty, "momentum": 0.9},
    "nesterov_momentum": {"learning_rate": inspect.Parameter.empty, "momentum": 0.9},
    "adagrad": {"learning_rate": 1.0, "epsilon": 1e-6},
    "rmsprop": {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6},
    "adadelta": {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-6},
    "adam": {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "adamax": {"learning_rate": 0.002, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "amsgrad": {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
}


def _vector(name="w", value=(1.0, 2.0)):
    return pytensor.shared(np.asarray(value, dtype="float32"), name=name)


def test_names_are_sorted_and_hold_every_algorithm():
    expected = set(LASAGNE_SIGNATURES) | {"nag", "rprop", "esgd", "nadam", "radam"}
    expected |= {"adamw", "lion"}
    assert optimizers.names() == sorted(optimizers.names())
    assert expected <= set(optimizers.names())


@pytest.mark.parametrize("algo", sorted(LASAGNE_SIGNATURES))
def test_lasagne_signatures_and_defaults(algo):
    assert optimizers.hyperparameters(algo) == OrderedDict(LASAGNE_SIGNATURES[algo])
    assert list(optimizers.hyperparameters(algo)) == list(LASAGNE_SIGNATURES[algo])


def test_hyperparameters_of_the_further_algorithms():
    assert dict(optimizers.hyperparameters("rprop")) == {
        "learning_rate": 1e-4,
        "rprop_increase": 1.01,
        "rprop_decrease": 0.99,
        "rprop_min_step": 0.0,
        "rprop_max_step": 100.0,
    }
    adamw = optimizers.hyperparameters("adamw")
    assert adamw["decoupled_decay"] == 0.01 and "weight_decay" not in adamw
    assert dict(optimizers.hyperparameters("lion")) == {
        "learning_rate": 1e-4,
        "beta1": 0.9,
        "beta2": 0.99,
        "decoupled_decay": 0.0,
    }


def test_apply_momentum_signatures():
    for function in (optimizers.apply_momentum, optimizers.apply_nesterov_momentum):
        parameters = inspect.signature(function).parameters
        assert list(parameters) == ["updates", "params", "momentum"]
        assert parameters["params"].default is None
        assert parameters["momentum"].default == 0.9


@pytest.mark.parametrize("algo", optimizers.names())
def test_describe_is_the_first_docstring_line(algo):
    line = optimizers.describe(algo)
    assert line and "\n" not in line
    assert line == inspect.getdoc(getattr(optimizers, algo)).splitlines()[0]


def test_build_matches_the_function():
    w = _vector()
    updates = optimizers.build("sgd", (w**2).sum(), [w], learning_rate=0.5)
    assert list(updates) == [w]
    pytensor.function([], [], updates=updates)()
    np.testing.assert_allclose(w.get_value(), [0.0, 0.0])


def test_unknown_algorithm_names_the_closest():
    w = _vector()
    with pytest.raises(
        ValueError, match=r"algo: unknown algorithm 'adamm'; choose from .*adam.*\(closest: adam"
    ):
        optimizers.build("adamm", (w**2).sum(), [w])
    for function in (optimizers.hyperparameters, optimizers.describe):
        with pytest.raises(ValueError, match=r"unknown algorithm 'rmsprp'.*\(closest: rmsprop"):
            function("rmsprp")


def test_unknown_hyperparameter_names_the_closest():
    w = _vector()
    with pytest.raises(
        TypeError,
        match=r"^adam: unknown hyperparameter 'beta_1'; adam takes learning_rate, beta1, beta2, "
        r"epsilon \(closest: beta1",
    ):
        optimizers.build("adam", (w**2).sum(), [w], beta_1=0.8)
    with pytest.raises(
        TypeError, match=r"adamw: unknown hyperparameter 'weight_decay'.*decoupled_decay"
    ):
        optimizers.build("adamw", (w**2).sum(), [w], weight_decay=0.1)


def test_missing_learning_rate():
    w = _vector()
    with pytest.raises(TypeError, match=r"^sgd: learning_rate is required$"):
        optimizers.build("sgd", (w**2).sum(), [w])
    with pytest.raises(TypeError, match=r"^momentum: learning_rate is required$"):
        optimizers.build("momentum", (w**2).sum(), [w], momentum=0.5)


def test_esgd_takes_the_loss_or_its_gradients():
    """Gradients built from the loss give the same Hessian-vector products."""
    w = _vector()
    w.set_value(np.array([1.0, -2.0, 0.5], dtype="float32"))
    loss = (w**4).sum()
    start = w.get_value()
    results = []
    for given in (loss, pytensor.grad(loss, [w])):
        w.set_value(start)
        step = pytensor.function([], [], updates=optimizers.esgd(given, [w]))
        step()
        results.append(w.get_value())
    np.testing.assert_array_equal(results[0], results[1])


def test_esgd_refuses_gradients_that_do_not_depend_on_the_parameters():
    w = _vector()
    with pytest.raises(TypeError, match=r"esgd: the gradient given for w does not depend on"):
        optimizers.esgd([pt.vector("g")], [w])
    with pytest.raises(TypeError, match=r"esgd: the gradient given for w does not depend on"):
        optimizers.build("esgd", [pt.vector("g")], [w])


@pytest.mark.parametrize("algo", ["sgd", "adam", "momentum"])
def test_wrong_number_of_gradients(algo):
    w, b = _vector("w"), _vector("b")
    grads = pytensor.grad((w**2).sum(), [w])
    with pytest.raises(ValueError, match=rf"^{algo}: got 1 gradient expressions for 2 parameters"):
        optimizers.build(algo, grads, [w, b], learning_rate=0.1)


def test_params_must_be_shared_and_listed_once():
    w = _vector()
    x = pt.vector("x")
    with pytest.raises(ValueError, match=r"sgd: parameter 'x' is a TensorVariable; .*shared"):
        optimizers.sgd((x**2).sum(), [x], 0.1)
    with pytest.raises(ValueError, match=r"adam: parameter 'w' is listed twice"):
        optimizers.adam((w**2).sum(), [w, w])
    with pytest.raises(TypeError, match=r"sgd: params must be a sequence or a mapping"):
        optimizers.sgd((w**2).sum(), w, 0.1)


def test_hyperparameters_must_be_scalars():
    w = _vector()
    with pytest.raises(TypeError, match=r"adam: beta1 must be a number or a symbolic scalar"):
        optimizers.adam((w**2).sum(), [w], beta1="0.9")
    with pytest.raises(TypeError, match=r"sgd: learning_rate must be a scalar, got a 1-d"):
        optimizers.sgd((w**2).sum(), [w], pt.vector("lr"))


def test_rprop_reads_its_initial_step_once():
    w = _vector()
    with pytest.raises(TypeError, match=r"rprop: learning_rate is read once"):
        optimizers.rprop((w**2).sum(), [w], learning_rate=pt.scalar("lr"))


def test_register_is_explicit_and_checked(monkeypatch):
    monkeypatch.setattr(registry, "_ALGORITHMS", registry._ALGORITHMS.copy())

    @optimizers.register("halve")
    def halve(loss_or_grads, params, factor=0.5):
        """Multiply every parameter by a factor."""
        return OrderedDict((p, p * factor) for p in params)

    assert "halve" in optimizers.names()
    assert optimizers.describe("halve") == "Multiply every parameter by a factor."
    assert dict(optimizers.hyperparameters("halve")) == {"factor": 0.5}
    with pytest.raises(ValueError, match=r"register: algorithm 'halve' is already registered"):
        optimizers.register("halve")(halve)
    with pytest.raises(
        TypeError, match=r"register: bad must take \(loss_or_grads, params, \.\.\.\)"
    ):
        optimizers.register("bad")(lambda loss, params: None)


def test_state_names_from_mapping_name_or_position():
    named = _vector("hid1.w")
    unnamed = pytensor.shared(np.ones(2, dtype="float32"))
    loss = (named**2).sum() + (unnamed**2).sum()
    by_name = optimizers.adam(loss, [named, unnamed])
    assert [v.name for v in by_name] == [
        "hid1.w/adam_m",
        "hid1.w/adam_v",
        "hid1.w",
        "param1/adam_m",
        "param1/adam_v",
        None,
        "adam/t",
    ]
    by_key = optimizers.adam(loss, {"enc.w": named, "enc.b": unnamed})
    assert "enc.w/adam_m" in [v.name for v in by_key]
    assert "enc.b/adam_v" in [v.name for v in by_key]


def test_repeated_names_get_their_position():
    a, b = _vector("W"), _vector("W")
    updates = optimizers.momentum((a**2).sum() + (b**2).sum(), [a, b], 0.1)
    names = [v.name for v in updates if v not in (a, b)]
    assert names == ["W[0]/momentum_velocity", "W[1]/momentum_velocity"]


def test_apply_momentum_composes_with_any_rule():
    w = _vector("w")
    base = optimizers.rmsprop((w**2).sum(), [w], learning_rate=0.01)
    updates = optimizers.apply_momentum(base, [w], momentum=0.5)
    assert base is not updates and len(base) == 2
    assert [v.name for v in updates] == ["w/rmsprop_accu", "w", "w/momentum_velocity"]
    with pytest.raises(ValueError, match=r"^apply_momentum: parameter 'b' has no update"):
        optimizers.apply_momentum(base, [_vector("b")])
