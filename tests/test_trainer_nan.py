"""The non-finite update policy: raise, skip, stop.

A callable source hands the trainer a batch containing inf (a standalone
Trainer does not check the values of batches), so the loss and gradients of
that update are not finite.
"""

import numpy as np
import pytest
from helpers import QUIET, linear

import trainkit


def batches(n=10, bad=()):
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        x = rng.normal(size=(8, 3)).astype("float32")
        y = (x[:, :2] - x[:, 2:]).astype("float32")
        if i in bad:
            x[2, 1] = np.inf
        out.append([x, y])
    return out


def source(items):
    position = iter(items)
    return lambda: next(position)


class States:
    """Copies of every non-random training state variable after each update."""

    def __init__(self):
        self.after = {}

    def on_start(self, trainer):
        self.on_update(trainer)

    def on_update(self, trainer):
        self.after[trainer.step] = {
            # the variable's own dtype: under JAX (no 64-bit mode) an int64 counter's value
            # comes back as int32 between updates; trainkit's state is numpy of that dtype
            name: np.array(var.get_value(), dtype=var.type.dtype, copy=True)
            for name, var in trainer.state_variables.items()
            if not name.endswith("/rng")
        }


def make(states=None, **kwargs):
    graph, loss, inputs, _ = linear()
    options = dict(algo="adam", learning_rate=0.01, epoch_size=5, max_updates=8)
    options.update(kwargs)
    callbacks = [] if states is None else [states]
    return trainkit.Trainer(graph, loss, inputs, callbacks=callbacks, **QUIET, **options)


def valid():
    return batches(1)[0]


def same(a, b):
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name], b[name]), name


def test_raise_names_the_update_and_leaves_the_state_as_it_was_before_it():
    states = States()
    # the fifth batch is the last of the first epoch; a validation at update 3
    # means restore_best would have something else to restore
    t = make(states, validate_every=3)
    with pytest.raises(FloatingPointError, match=r"update 5 \(epoch 1, batch 5\).*nan_policy"):
        for _ in t.itertrain(source(batches(bad=(4,))), valid()):
            pass
    assert t.step == 4 and t.best_step == 3
    now = {n: v.get_value() for n, v in t.state_variables.items() if not n.endswith("/rng")}
    same(now, states.after[4])
    assert int(now["adam/t"]) == 4
    assert t.stop_reason.startswith("FloatingPointError: non-finite")


def test_skip_leaves_parameters_and_optimizer_state_bitwise_untouched_and_counts():
    states = States()
    t = make(states, nan_policy="skip", validate_every=2, restore_best=False)
    pairs = list(t.itertrain(source(batches(bad=(3, 6))), valid()))
    same(states.after[4], states.after[3])
    same(states.after[7], states.after[6])
    assert not np.array_equal(states.after[5]["out.w"], states.after[4]["out.w"])
    assert [(tm["step"], tm["skipped"]) for tm, _ in pairs] == [(2, 0), (4, 1), (6, 1), (8, 2)]
    assert t.step == 8 and int(t.state_variables["adam/t"].get_value()) == 6
    assert all(np.isfinite(tm["loss"]) for tm, _ in pairs)
    # skipping is training as if the bad batches were not there
    clean = make(max_updates=6, restore_best=False)
    clean.train(source([b for i, b in enumerate(batches()) if i not in (3, 6)][:6]), valid())
    for name, p in clean.graph.params.items():
        assert np.array_equal(p.get_value(), t.graph.params[name].get_value())


def test_a_skipped_update_still_advances_the_step_and_the_schedule():
    t = make(
        nan_policy="skip",
        algo="sgd",
        validate_every=1,
        max_updates=5,
        lr_schedule=dict(name="exponential", decay_steps=1, gamma=0.5),
    )
    pairs = list(t.itertrain(source(batches(bad=(1,))), valid()))
    assert [tm["step"] for tm, _ in pairs] == [1, 2, 3, 4, 5]
    assert [tm["lr"] for tm, _ in pairs] == [float(np.float32(0.01 * 0.5**s)) for s in range(5)]
    # the window of update 2 held only the skipped update: its training loss is unknown
    assert np.isnan(pairs[1][0]["loss"]) and pairs[1][0]["skipped"] == 1


def test_stop_ends_training_with_a_reason_after_validating():
    states = States()
    t = make(states, nan_policy="stop", validate_every=3, restore_best=False)
    pairs = list(t.itertrain(source(batches(bad=(3,))), valid()))
    assert [(tm["step"], tm["skipped"]) for tm, _ in pairs] == [(3, 0), (4, 1)]
    assert t.stop_reason == (
        "non-finite loss or gradient at update 4 (epoch 1, batch 4) (nan_policy='stop')"
    )
    same(states.after[4], states.after[3])


def test_a_huge_learning_rate_raises_with_finite_parameters_left():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    with pytest.raises(FloatingPointError, match=r"non-finite loss or gradient at update \d+"):
        net.train(
            [x, x[:, :2]], algo="sgd", learning_rate=1e30, batch_size=8, max_updates=20, **QUIET
        )
    for p in net.params.values():
        assert np.all(np.isfinite(p.get_value()))


@pytest.mark.parametrize("accumulate", [1, 2], ids=["one-function", "split"])
def test_skip_on_jax_leaves_the_state_bitwise_untouched(accumulate):
    """The guard on the default backend (JAX): a skipped update changes nothing."""
    states = States()
    t = make(
        states,
        nan_policy="skip",
        restore_best=False,
        mode="JAX",
        accumulate=accumulate,
        epoch_size=100,
    )
    bad = tuple(range(3 * accumulate, 4 * accumulate))  # every batch of update 4
    list(t.itertrain(source(batches(n=8 * accumulate, bad=bad)), valid()))
    same(states.after[4], states.after[3])
    assert not np.array_equal(states.after[5]["out.w"], states.after[4]["out.w"])
    assert t.skipped >= 1
