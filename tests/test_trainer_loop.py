"""The training loop end to end: what it yields, batching, stopping, restoring, data sources.

Expectations come from a numpy re-implementation of plain SGD on a linear
model (``out = x @ w + b``, mean squared error), not from trainkit.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import QUIET, linear

import regularizers
import trainkit


def trainer(algo="sgd", learning_rate=0.05, seed=0, **kwargs):
    graph, loss, inputs, values = linear(seed=seed)
    t = trainkit.Trainer(
        graph, loss, inputs, algo=algo, learning_rate=learning_rate, **QUIET, **kwargs
    )
    return t, values


def params(t):
    return {name: p.get_value() for name, p in t.graph.params.items()}


def mse(values, x, y):
    out = x.astype(np.float64) @ values["out.w"] + values["out.b"]
    return float(np.mean((out - y) ** 2))


def sgd_reference(values, batches, lrs):
    """Plain SGD in float64: the parameters after each update and each batch's loss."""
    w = values["out.w"].astype(np.float64)
    b = values["out.b"].astype(np.float64)
    history, losses = [], []
    for (x, y), lr in zip(batches, lrs, strict=True):
        err = x @ w + b - y
        losses.append(float(np.mean(err**2)))
        scale = 2.0 / err.size
        w = w - lr * scale * (x.T @ err)
        b = b - lr * scale * err.sum(axis=0)
        history.append({"out.w": w, "out.b": b})
    return history, losses


def data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0]]) + 0.3).astype("float32")
    return x, y


def in_order(x, y, batch_size, updates):
    """Batches of an unshuffled array source, epoch after epoch."""
    starts = list(range(0, len(x), batch_size))
    return [
        (x[s : s + batch_size], y[s : s + batch_size])
        for s in (starts[i % len(starts)] for i in range(updates))
    ]


def close(actual, expected, rtol=2e-5, atol=1e-6):
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol)


def without_seconds(pairs):
    return [({k: v for k, v in tm.items() if k != "seconds"}, dict(vm)) for tm, vm in pairs]


# -- what the loop yields ------------------------------------------------------------


def test_itertrain_yields_one_pair_per_epoch_that_matches_numpy_sgd():
    x, y = data()
    t, values = trainer(batch_size=8, max_epochs=3, shuffle=False, patience=None)
    pairs = list(t.itertrain([x, y]))

    assert [tm["step"] for tm, _ in pairs] == [5, 10, 15]
    assert [tm["epoch"] for tm, _ in pairs] == [1, 2, 3]
    assert t.stop_reason == "max_epochs=3 reached"
    history, losses = sgd_reference(values, in_order(x, y, 8, 15), [0.05] * 15)
    close(params(t), history[-1])
    for i, (tm, vm) in enumerate(pairs):
        assert list(tm) == ["step", "epoch", "lr", "seconds", "skipped", "loss", "base"]
        assert list(vm) == ["loss", "base"]
        # training metrics: the mean over the epoch's updates of each batch's loss
        np.testing.assert_allclose(tm["loss"], np.mean(losses[5 * i : 5 * i + 5]), rtol=2e-5)
        assert tm["base"] == tm["loss"]
        assert tm["lr"] == pytest.approx(0.05) and tm["skipped"] == 0
        # validation (train data, as valid=None): the loss after the epoch's last update
        np.testing.assert_allclose(vm["loss"], mse(history[5 * i + 4], x, y), rtol=2e-5)
    assert [tm["seconds"] for tm, _ in pairs] == sorted(tm["seconds"] for tm, _ in pairs)


def test_train_returns_the_last_pair_of_itertrain():
    x, y = data()
    a, _ = trainer(batch_size=8, max_updates=7)
    b, _ = trainer(batch_size=8, max_updates=7)
    pairs = list(a.itertrain([x, y]))
    last = b.train([x, y])
    assert without_seconds([last]) == without_seconds(pairs[-1:])
    for name, value in params(a).items():
        assert np.array_equal(value, params(b)[name])


def test_network_itertrain_and_train_agree():
    x, y = data()
    kwargs = dict(algo="adam", learning_rate=0.01, batch_size=16, max_updates=6, **QUIET)
    net_a, net_b = trainkit.Regressor([3, (4, "tanh"), 2]), trainkit.Regressor([3, (4, "tanh"), 2])
    pairs = list(net_a.itertrain([x, y], **kwargs))
    last = net_b.train([x, y], **kwargs)
    assert [tm["step"] for tm, _ in pairs] == [3, 6]
    assert list(pairs[-1][1]) == ["loss", "mse"]
    assert without_seconds([last]) == without_seconds(pairs[-1:])
    for name, p in net_a.params.items():
        assert np.array_equal(p.get_value(), net_b.params[name].get_value())


# -- batching, shuffling, stopping, validating -----------------------------------------


def test_batch_size_keeps_the_remainder_batch_and_epochs_count_completed_passes():
    x, y = data()
    t, values = trainer(batch_size=16, max_updates=7, shuffle=False)
    pairs = list(t.itertrain([x, y]))
    # 40 examples: batches of 16, 16 and 8; validation after each epoch and at the end
    assert [(tm["step"], tm["epoch"]) for tm, _ in pairs] == [(3, 1), (6, 2), (7, 2)]
    history, losses = sgd_reference(values, in_order(x, y, 16, 7), [0.05] * 7)
    close(params(t), history[-1])
    np.testing.assert_allclose(pairs[-1][0]["loss"], losses[6], rtol=2e-5)
    assert t.stop_reason == "max_updates=7 reached"


def linear_loss_trainer(shuffle, seed, max_updates):
    """loss = mean(x @ w): one SGD epoch moves w by -lr * sum(x) / batch_size in any order."""
    x = pt.matrix("x")
    w = pytensor.shared(np.zeros(3, "float32"), name="out.w")
    graph = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    return trainkit.Trainer(
        graph,
        pt.mean(x @ w),
        [x],
        algo="sgd",
        learning_rate=0.1,
        batch_size=4,
        shuffle=shuffle,
        seed=seed,
        max_updates=max_updates,
        restore_best=False,
        **QUIET,
    )


def test_shuffling_uses_every_example_once_per_epoch_and_depends_only_on_the_seed():
    x = np.random.default_rng(5).normal(size=(16, 3)).astype("float32")
    runs = {}
    for key, shuffle, seed, updates in [
        ("a", True, 1, 2),
        ("a again", True, 1, 2),
        ("b", True, 2, 2),
        ("plain", False, 1, 2),
        ("epoch", True, 3, 4),
    ]:
        t = linear_loss_trainer(shuffle, seed, updates)
        t.train([x])
        runs[key] = t.graph.params["out.w"].get_value()
    assert np.array_equal(runs["a"], runs["a again"])
    assert not np.allclose(runs["a"], runs["b"])
    assert not np.allclose(runs["a"], runs["plain"])
    np.testing.assert_allclose(runs["plain"], -0.1 * x[:8].sum(0) / 4, rtol=1e-5)
    # after a whole shuffled epoch every example has contributed exactly once
    np.testing.assert_allclose(runs["epoch"], -0.1 * x.sum(0) / 4, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "limits, step, reason",
    [
        (dict(max_updates=7, max_epochs=1), 5, "max_epochs=1 reached"),
        (dict(max_updates=3, max_epochs=5), 3, "max_updates=3 reached"),
        (dict(max_updates=None, max_epochs=2, patience=None), 10, "max_epochs=2 reached"),
    ],
)
def test_max_updates_and_max_epochs(limits, step, reason):
    x, y = data()
    t, _ = trainer(batch_size=8, **limits)
    pairs = list(t.itertrain([x, y]))
    assert t.step == pairs[-1][0]["step"] == step
    assert t.stop_reason == reason


def test_validate_every_counts_updates_across_epochs_and_the_end_is_validated():
    x, y = data()
    t, values = trainer(
        batch_size=8, max_updates=10, validate_every=3, shuffle=False, restore_best=False
    )
    pairs = list(t.itertrain([x, y]))
    assert [(tm["step"], tm["epoch"]) for tm, _ in pairs] == [(3, 0), (6, 1), (9, 1), (10, 2)]
    history, losses = sgd_reference(values, in_order(x, y, 8, 10), [0.05] * 10)
    for (tm, vm), start in zip(pairs, [0, 3, 6, 9], strict=True):
        stop = tm["step"]
        np.testing.assert_allclose(tm["loss"], np.mean(losses[start:stop]), rtol=2e-5)
        np.testing.assert_allclose(vm["loss"], mse(history[stop - 1], x, y), rtol=2e-5)


def test_validate_every_longer_than_the_run_validates_and_keeps_the_final_state():
    # theanets restored stale parameters when no validation happened during the run
    x, y = data()
    t, values = trainer(batch_size=8, max_updates=7, validate_every=100, shuffle=False)
    pairs = list(t.itertrain([x, y]))
    assert [tm["step"] for tm, _ in pairs] == [7]
    history, _ = sgd_reference(values, in_order(x, y, 8, 7), [0.05] * 7)
    close(params(t), history[-1])
    assert t.restored_step is None


# -- early stopping and best-parameter restoration ---------------------------------------


class Snapshots:
    """A callback keeping a copy of the parameters at every validation."""

    def __init__(self):
        self.at = {}

    def on_validation(self, trainer, train_metrics, valid_metrics):
        self.at[trainer.step] = params(trainer)


def overshoot_trainer(**kwargs):
    """Training pulls w to 1, validation wants 0.5: the valid loss falls, then rises."""
    x, y = pt.matrix("x"), pt.matrix("y")
    w = pytensor.shared(np.zeros((1, 1), "float32"), name="out.w")
    graph = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    snapshots = Snapshots()
    options = dict(learning_rate=0.05, batch_size=8, validate_every=1, max_updates=40)
    options.update(kwargs)
    t = trainkit.Trainer(
        graph,
        pt.mean((x @ w - y) ** 2),
        [x, y],
        algo="sgd",
        callbacks=[snapshots],
        **QUIET,
        **options,
    )
    ones = np.ones((8, 1), "float32")
    return t, snapshots, [ones, ones], [ones, 0.5 * ones]


def expected_stop(losses, patience, min_improvement):
    """The documented rule: stop when more than ``patience`` validations fail to improve."""
    reference, bad = np.inf, 0
    for i, loss in enumerate(losses):
        if reference == np.inf or loss < reference - min_improvement * abs(reference):
            reference, bad = loss, 0
        else:
            bad += 1
            if bad >= max(patience, 1):  # Keras' counting (issue 9: patience=8 stops at 8)
                return i
    return None


@pytest.mark.parametrize(
    "patience, min_improvement, validations", [(2, 0.0, 9), (1, 0.0, 8), (2, 0.6, 8), (0, 0.0, 8)]
)
def test_patience_min_improvement_and_restoring_the_best_parameters(
    patience, min_improvement, validations
):
    t, snapshots, train, valid = overshoot_trainer(
        patience=patience, min_improvement=min_improvement
    )
    pairs = list(t.itertrain(train, valid))
    losses = [vm["loss"] for _, vm in pairs]
    # the validation losses are those of w_t = 1 - 0.9 ** t against 0.5
    w = 1 - 0.9 ** np.arange(1, len(pairs) + 1)
    np.testing.assert_allclose(losses, (w - 0.5) ** 2, rtol=1e-4, atol=1e-7)
    stop = expected_stop(losses, patience, min_improvement)
    assert len(pairs) == stop + 1 == validations
    assert t.stop_reason == (
        f"no improvement in {max(patience, 1)} validations (patience={patience})"
    )
    best = pairs[int(np.argmin(losses))][0]["step"]
    assert best < t.step and t.restored_step == best
    w_now = t.graph.params["out.w"].get_value()
    assert np.array_equal(w_now, snapshots.at[best]["out.w"])
    assert (float(w_now[0, 0]) - 0.5) ** 2 <= losses[-1]


def test_restore_best_false_keeps_the_last_parameters():
    t, snapshots, train, valid = overshoot_trainer(patience=2, restore_best=False)
    t.train(train, valid)
    assert t.restored_step is None
    assert np.array_equal(t.graph.params["out.w"].get_value(), snapshots.at[t.step]["out.w"])


def test_a_diverging_learning_rate_late_in_the_run_is_undone_by_restore_best():
    # a warmup ramps the rate up to 1.5, where SGD on this quadratic (curvature 2) diverges
    t, snapshots, train, valid = overshoot_trainer(
        patience=None, learning_rate=1.5, lr_warmup=12, max_updates=16
    )
    pairs = list(t.itertrain(train, valid))
    lrs = [tm["lr"] for tm, _ in pairs]
    np.testing.assert_allclose(lrs, [1.5 * min(s + 1, 12) / 12 for s in range(16)], rtol=1e-6)
    losses = [vm["loss"] for _, vm in pairs]
    assert losses[-1] > 10 * min(losses)
    best = pairs[int(np.argmin(losses))][0]["step"]
    assert t.restored_step == best
    w_now = t.graph.params["out.w"].get_value()
    assert np.array_equal(w_now, snapshots.at[best]["out.w"])
    assert (float(w_now[0, 0]) - 0.5) ** 2 <= losses[-1]


# -- data sources ---------------------------------------------------------------------


def test_lists_tuples_and_memory_mapped_arrays_train_identically(tmp_path):
    x, y = data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mapped = [
        np.load(tmp_path / "x.npy", mmap_mode="r"),
        np.load(tmp_path / "y.npy", mmap_mode="r"),
    ]
    assert isinstance(mapped[0], np.memmap)
    results = []
    for source in ([x, y], (x, y), mapped):
        t, _ = trainer(batch_size=8, max_updates=7, seed=0)
        pairs = list(t.itertrain(source))
        results.append((params(t), without_seconds(pairs)))
    for other in results[1:]:
        assert other[1] == results[0][1]
        for name, value in results[0][0].items():
            assert np.array_equal(other[0][name], value)


def test_a_callable_source_with_epoch_size():
    x, y = data()
    batches = in_order(x, y, 8, 5)
    calls = []

    def source():
        calls.append(1)
        return list(batches[(len(calls) - 1) % 5])

    t, values = trainer(epoch_size=5, max_epochs=2, restore_best=False)
    pairs = list(t.itertrain(source, [x, y]))
    assert [(tm["step"], tm["epoch"]) for tm, _ in pairs] == [(5, 1), (10, 2)]
    assert len(calls) == 10
    history, _ = sgd_reference(values, in_order(x, y, 8, 10), [0.05] * 10)
    close(params(t), history[-1])


def test_a_generator_source_ends_training_when_it_runs_out():
    x, y = data()
    batches = in_order(x, y, 8, 7)
    t, values = trainer(max_updates=None, patience=None, restore_best=False)
    pairs = list(t.itertrain((list(b) for b in batches), [x, y]))
    assert t.stop_reason == "training data exhausted"
    # a one-shot iterator's epoch is the whole stream
    assert [(tm["step"], tm["epoch"]) for tm, _ in pairs] == [(7, 1)]
    history, _ = sgd_reference(values, batches, [0.05] * 7)
    close(params(t), history[-1])


def test_a_list_of_batches_is_an_epoch():
    x, y = data()
    batches = [list(b) for b in in_order(x, y, 8, 3)]
    t, values = trainer(max_epochs=2, restore_best=False)
    pairs = list(t.itertrain(batches, [x, y]))
    assert [(tm["step"], tm["epoch"]) for tm, _ in pairs] == [(3, 1), (6, 2)]
    history, _ = sgd_reference(values, in_order(x, y, 8, 3) * 2, [0.05] * 6)
    close(params(t), history[-1])
