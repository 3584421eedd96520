"""Tests for trainkit.training.spec: every keyword parsed once, with one wording."""

import numpy as np
import pytensor
import pytest

import regularizers
import trainkit
from regularizers.errors import ArgumentError, InvalidArgument, UnknownArgument
from trainkit.training import spec as spec_module
from trainkit.training.options import OPTIONS
from trainkit.training.spec import DEFAULT_ALGO, DEFAULT_LEARNING_RATE, parse


def test_parse_sorts_keywords_into_three_kinds():
    spec = parse("adam", learning_rate=0.01, beta1=0.8, weight_decay=1e-4, max_norm=3, batch_size=8)
    assert spec.hyperparameters == {"learning_rate": 0.01, "beta1": 0.8}
    assert [r.name for r in spec.regularizers] == ["weight_l2", "max_norm"]
    assert spec.options.batch_size == 8
    assert spec.options.patience == OPTIONS["patience"].default


def test_default_algorithm_and_learning_rate_live_in_one_place():
    assert parse().algo == DEFAULT_ALGO == "rmsprop"
    assert parse("rmsprop").hyperparameters == {"learning_rate": DEFAULT_LEARNING_RATE}
    assert parse("sgd").hyperparameters == {"learning_rate": DEFAULT_LEARNING_RATE}


def test_typos_get_the_closest_keywords_as_data():
    with pytest.raises(TypeError, match=r"weight_l22: unknown keyword.*closest: weight_l2"):
        parse("adam", weight_l22=0.1)
    with pytest.raises(TypeError, match=r"bach_size: unknown keyword.*closest: batch_size"):
        parse("adam", bach_size=16)
    with pytest.raises(UnknownArgument) as info:
        parse("adam", learning_rat=0.1)
    error = info.value
    assert (error.argument, error.value) == ("learning_rat", 0.1)
    assert error.closest[0] == "learning_rate"
    assert "learning_rate" in error.allowed


def test_a_misplaced_hyperparameter_names_its_algorithms():
    with pytest.raises(
        TypeError, match=r"rho: not a hyperparameter of adam \(it belongs to .*rmsprop"
    ):
        parse("adam", rho=0.9)


def test_unknown_algorithm_with_closest():
    with pytest.raises(ValueError, match=r"algo: unknown algorithm 'adamm'.*closest: adam"):
        parse("adamm")
    with pytest.raises(InvalidArgument, match=r"algo: unknown algorithm 3"):
        parse(3)


def test_trainer_options_a_caller_does_not_take_are_unknown():
    with pytest.raises(TypeError, match="patience: unknown keyword"):
        parse("sgd", trainer_options_allowed=(), patience=3)


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "learning_rate",
            "fast",
            r"learning_rate: must be a number >= 0 or a shared variable, got 'fast'",
        ),
        ("learning_rate", None, r"learning_rate: must be a number >= 0 .* got None"),
        ("learning_rate", True, r"learning_rate: must be a number >= 0 .* got True"),
        ("learning_rate", -0.1, r"learning_rate: must be >= 0, got -0.1"),
        ("learning_rate", float("nan"), r"learning_rate: must be a finite number, got nan"),
        ("beta1", 1.5, r"beta1: must be in \[0, 1\), got 1.5"),
        ("epsilon", -1, r"epsilon: must be >= 0, got -1.0"),
    ],
)
def test_bad_hyperparameters_are_named_before_compiling(key, value, message):
    with pytest.raises(InvalidArgument, match=message):
        parse("adam", **{key: value})


def test_momentum_out_of_range_is_refused():
    with pytest.raises(InvalidArgument, match=r"momentum: must be in \[0, 1\), got 2.0"):
        parse("momentum", learning_rate=0.1, momentum=2)


def test_a_shared_learning_rate_passes_through():
    lr = pytensor.shared(np.float32(0.1), name="lr")
    assert parse("adam", learning_rate=lr).learning_rate is lr


def test_regularizer_errors_name_the_keyword():
    with pytest.raises(UnknownArgument) as info:
        parse("adam", weight_decay=dict(wieght=0.1))
    assert info.value.argument == "weight_decay"
    assert "closest: weight" in info.value.problem
    with pytest.raises(ArgumentError, match=r"^hidden_l1: expected a number"):
        parse("adam", hidden_l1="lots")


def test_cosine_schedule_with_max_epochs_is_accepted():
    spec = parse("adam", lr_schedule="cosine", max_epochs=3)
    assert spec.options.lr_schedule == "cosine"
    with pytest.raises(UnknownArgument, match=r"lr_schedule: cosine needs total_steps.*max_epochs"):
        parse("adam", lr_schedule="cosine")


def test_schedule_hints_are_spelled_for_any_front_end():
    with pytest.raises(UnknownArgument) as info:
        parse("adam", lr_schedule="step")
    assert "dict(" not in str(info.value) and "step_size" in str(info.value)


def test_save_progress_into_a_missing_folder_is_refused_before_compiling(tmp_path):
    with pytest.raises(
        InvalidArgument, match=r"save_progress: the folder .*missing.* does not exist"
    ):
        parse("adam", save_progress=tmp_path / "missing" / "ckpt.npz")


def test_one_train_call_parses_its_keywords_once(monkeypatch):
    calls = []
    real_parse = spec_module.parse
    real_from_kwargs = regularizers.from_kwargs

    def counting_parse(*args, **kwargs):
        calls.append("parse")
        return real_parse(*args, **kwargs)

    def counting_from_kwargs(**kwargs):
        calls.append("from_kwargs")
        return real_from_kwargs(**kwargs)

    monkeypatch.setattr(spec_module, "parse", counting_parse)
    monkeypatch.setattr(regularizers, "from_kwargs", counting_from_kwargs)
    import trainkit.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "parse", counting_parse)
    x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    net = trainkit.Regressor([2, 3, 1])
    net.train(
        [x, x[:, :1]],
        algo="adam",
        recurrent_norm=None,
        weight_l2=1e-4,
        max_updates=2,
        progress=False,
        log=False,
    )
    assert calls == ["parse", "from_kwargs"]
