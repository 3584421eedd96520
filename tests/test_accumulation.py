"""Gradient accumulation and the split step (issue 7): N batches, one update."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import QUIET

import regularizers
import trainkit


def dyadic_problem(n=32):
    """Data whose SGD arithmetic is exact in float32: small dyadic numbers only."""
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(n, 3)).astype("float32") / 2
    y = rng.integers(-4, 5, size=(n, 2)).astype("float32") / 4
    return x, y


def linear_trainer(**kwargs):
    x, y = pt.matrix("x"), pt.matrix("y")
    w = pytensor.shared(np.zeros((3, 2), "float32"), name="out.w")
    graph = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    options = dict(algo="sgd", learning_rate=2.0**-4, shuffle=False, patience=None, **QUIET)
    options.update(kwargs)
    return trainkit.Trainer(graph, pt.mean((x @ w - y) ** 2), [x, y], **options), w


def test_two_batches_accumulated_equal_one_batch_twice_as_large_bitwise():
    data = list(dyadic_problem())
    # two updates keep every product and sum exact in float32; later ones round
    big, w_big = linear_trainer(batch_size=8, max_updates=2)
    big.train(data)
    small, w_small = linear_trainer(batch_size=4, accumulate=2, max_updates=2)
    small.train(data)
    assert small.step == big.step == 2
    assert small.dataset.drawn == 4 and big.dataset.drawn == 2
    assert np.array_equal(w_small.get_value(), w_big.get_value())
    assert not np.array_equal(w_big.get_value(), np.zeros((3, 2), "float32"))


def test_accumulation_with_adam_penalties_and_clipping_matches_to_rounding(rng):
    x = rng.normal(size=(48, 4)).astype("float32")
    y = (x[:, :2] - x[:, 2:]).astype("float32")
    options = dict(
        algo="adam",
        learning_rate=0.01,
        weight_l2=1e-3,
        max_total_gradient_norm=0.5,
        shuffle=False,
        max_updates=6,
        **QUIET,
    )
    big = trainkit.Regressor([4, (5, "tanh"), 2], seed=3)
    big.train([x, y], batch_size=16, **options)
    small = trainkit.Regressor([4, (5, "tanh"), 2], seed=3)
    small.train([x, y], batch_size=4, accumulate=4, **options)
    for name, p in big.params.items():
        np.testing.assert_allclose(
            small.params[name].get_value(), p.get_value(), rtol=2e-5, atol=1e-6
        )


def test_weighted_accumulation_weights_batches_by_their_weight_sums(rng):
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    w = rng.uniform(0.2, 3.0, size=16).astype("float32")
    options = dict(algo="sgd", learning_rate=0.1, shuffle=False, max_updates=2, **QUIET)
    big = trainkit.Regressor([3, 1])
    big.train([x, y, w], batch_size=8, **options)
    small = trainkit.Regressor([3, 1])
    small.train([x, y, w], batch_size=2, accumulate=4, **options)
    for name, p in big.params.items():
        np.testing.assert_allclose(small.params[name].get_value(), p.get_value(), rtol=1e-5)


def test_the_split_step_without_accumulation_equals_the_one_function_step():
    data = list(dyadic_problem())
    one, w_one = linear_trainer(batch_size=8, max_updates=3, algo="adam", learning_rate=0.01)
    one.train(data)
    split, w_split = linear_trainer(
        batch_size=8, max_updates=3, algo="adam", learning_rate=0.01, split_update=True
    )
    split.train(data)
    assert split.compiled.split and not one.compiled.split
    assert np.array_equal(w_split.get_value(), w_one.get_value())


def test_an_update_never_spans_an_epoch_boundary():
    data = list(dyadic_problem(n=20))  # 5 batches of 4 per epoch: updates of 2, 2, 1 batches
    t, _ = linear_trainer(batch_size=4, accumulate=2, max_epochs=2)
    t.train(data)
    assert t.step == 6 and t.dataset.drawn == 10


def test_accumulated_runs_resume_bitwise(tmp_path):
    data = list(dyadic_problem())
    full, w_full = linear_trainer(
        batch_size=4, accumulate=2, max_updates=6, algo="adam", learning_rate=0.01
    )
    full.train(data)
    part, _ = linear_trainer(
        batch_size=4,
        accumulate=2,
        max_updates=3,
        algo="adam",
        learning_rate=0.01,
        save_progress=tmp_path / "c",
    )
    part.train(data)
    rest, w_rest = linear_trainer(
        batch_size=4,
        accumulate=2,
        max_updates=6,
        algo="adam",
        learning_rate=0.01,
        resume=tmp_path / "c",
    )
    rest.train(data)
    assert np.array_equal(w_rest.get_value(), w_full.get_value())


def test_a_non_finite_batch_adds_nothing_to_the_accumulation():
    x, y = dyadic_problem(n=8)
    y = y.copy()
    y[4:] = np.nan  # the second batch of the first update
    t, w = linear_trainer(batch_size=4, accumulate=2, max_updates=1, nan_policy="skip")
    t.train([x, y])
    reference, w_ref = linear_trainer(batch_size=4, max_updates=1)
    reference.train([x[:4], y[:4]])
    assert t.skipped == 1
    assert np.array_equal(w.get_value(), w_ref.get_value())


def test_accumulate_needs_the_split_step_and_esgd_cannot_split():
    with pytest.raises(ValueError, match=r"split_update: accumulate=2 needs the split update"):
        linear_trainer(accumulate=2, split_update=False)
    t, _ = linear_trainer(algo="esgd", accumulate=2, max_updates=1)
    with pytest.raises(ValueError, match=r"esgd needs the loss itself"):
        t.train(list(dyadic_problem()))
