"""What a run reports agrees with the model it leaves (issue 9's red-team findings).

Each test failed before its fix: parameters left as JAX arrays, a diverged run
reported as a success, returned metrics of parameters that were not kept,
weighted validation refused, and the Python options the config already had.
"""

import logging

import numpy as np
import pytest
from helpers import QUIET

import trainkit


def regression(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x[:, :1] * 2 - x[:, 1:2]).astype("float32")


@pytest.mark.filterwarnings("error")
def test_after_jax_training_parameters_are_numpy_and_predict_works():
    x, y = regression()
    net = trainkit.Regressor([3, 8, 1])
    net.train([x, y], algo="adam", max_updates=5, mode="JAX", **QUIET)  # and no warnings
    for p in net.params.values():
        value = p.get_value(borrow=True)
        assert type(value) is np.ndarray and value.flags.writeable
    assert net.predict(x).shape == (64, 1)


def test_a_run_that_skips_most_updates_is_reported_as_diverged(caplog):
    x, y = regression()
    net = trainkit.Regressor([3, 8, 1])
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        net.train(
            [x, y],
            algo="sgd",
            learning_rate=1e6,
            nan_policy="skip",
            max_updates=40,
            patience=None,
            **QUIET,
        )
    t = net.trainer
    assert t.diverged and "diverged" in t.stop_reason and t.skipped > 20
    assert any("training diverged" in r.getMessage() for r in caplog.records)


def test_a_run_stopped_on_a_non_finite_value_is_reported_as_diverged():
    x, y = regression()
    net = trainkit.Regressor([3, 8, 1])
    net.train([x, y], algo="sgd", learning_rate=1e6, nan_policy="stop", max_updates=40, **QUIET)
    assert net.trainer.diverged and net.trainer.stop_reason.startswith("non-finite")


def test_a_healthy_run_is_not_diverged():
    x, y = regression()
    net = trainkit.Regressor([3, 8, 1])
    net.train([x, y], algo="adam", max_updates=10, nan_policy="skip", **QUIET)
    assert not net.trainer.diverged


def test_train_returns_the_metrics_of_the_parameters_it_keeps():
    x, y = regression()
    xv, yv = regression(seed=1)
    net = trainkit.Regressor([3, 8, 1])
    # a learning rate that overshoots late: the best validation is not the last
    _, valid = net.train(
        [x, y],
        [xv, yv],
        algo="sgd",
        learning_rate=0.3,
        batch_size=64,
        validate_every=1,
        max_updates=30,
        patience=None,
        **QUIET,
    )
    t = net.trainer
    assert t.restored_step is not None and t.restored_step < t.step
    mse = float(np.mean((net.predict(xv) - yv) ** 2))
    assert valid["mse"] == pytest.approx(mse, rel=1e-5)
    assert valid["loss"] == pytest.approx(t.best_loss)


def test_weighted_validation_with_unweighted_training_data():
    x, y = regression()
    xv, yv = regression(seed=2, n=32)
    w = np.linspace(0.5, 2.0, 32).astype("float32")
    net = trainkit.Regressor([3, 1])
    _, valid = net.train([x, y], [xv, yv, w], algo="adam", max_updates=3, **QUIET)
    error = ((net.predict(xv) - yv) ** 2).ravel()
    assert valid["mse"] == pytest.approx(float((w * error).sum() / w.sum()), rel=1e-5)


def test_valid_fraction_holds_out_a_seeded_share():
    x, y = regression(n=50)
    net = trainkit.Regressor([3, 1])
    pairs = list(
        net.itertrain(
            [x, y], algo="adam", valid_fraction=0.2, max_updates=2, batch_size=50, **QUIET
        )
    )
    assert net.trainer.dataset.n_examples == 40
    again = trainkit.Regressor([3, 1])
    same = list(
        again.itertrain(
            [x, y], algo="adam", valid_fraction=0.2, max_updates=2, batch_size=50, **QUIET
        )
    )
    assert pairs[-1][1] == same[-1][1]
    with pytest.raises(ValueError, match=r"valid_fraction: must be a number in \(0, 1\)"):
        net.train([x, y], valid_fraction=1.5)


def test_threads_limits_blas_while_training():
    import threadpoolctl

    seen = []

    class Look:
        def on_update(self, trainer):
            seen.extend(info["num_threads"] for info in threadpoolctl.threadpool_info())

    x, y = regression()
    trainkit.Regressor([3, 1]).train([x, y], max_updates=2, threads=1, callbacks=[Look()], **QUIET)
    assert seen and set(seen) == {1}
    with pytest.raises(ValueError, match=r"threads: must be a positive int or None, got 0"):
        trainkit.Regressor([3, 1]).train([x, y], threads=0)
