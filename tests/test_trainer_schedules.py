"""Learning-rate schedules drive the trainer's shared learning rate, without recompiling.

Each case trains a linear model with SGD, validating after every update, and
checks the reported rate of each update against the schedule's closed form
(written out here) and the parameters against numpy SGD run with those rates.
"""

import math

import numpy as np
import pytensor
import pytest
from helpers import linear

import trainkit

LR = 0.05
UPDATES = 8


def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x @ np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0]]) + 0.3).astype("float32")
    return x, y


def sgd(values, batches, lrs):
    w, b = values["out.w"].astype(np.float64), values["out.b"].astype(np.float64)
    for (x, y), lr in zip(batches, lrs, strict=True):
        err = x @ w + b - y
        scale = 2.0 / err.size
        w, b = w - lr * scale * (x.T @ err), b - lr * scale * err.sum(axis=0)
    return {"out.w": w, "out.b": b}


class Functions:
    """Records the compiled training function at every update."""

    def __init__(self):
        self.seen = []

    def on_update(self, trainer):
        self.seen.append(trainer.compiled)


def step_rates(s):
    return LR * 0.5 ** (s // 3)


def exponential_rates(s):
    return LR * 0.5 ** (s / 2)


def cosine_rates(s):
    return 0.01 + (LR - 0.01) * (1 + math.cos(math.pi * min(s, UPDATES) / UPDATES)) / 2


def warmup_rates(s):
    return LR * (s + 1) / 4 if s < 4 else LR


def warmup_step_rates(s):
    # the decay's clock starts when the warmup ends
    return LR * (s + 1) / 3 if s < 3 else LR * 0.5 ** ((s - 3) // 2)


@pytest.mark.parametrize(
    "options, closed_form",
    [
        (dict(lr_schedule=dict(name="step", step_size=3, gamma=0.5)), step_rates),
        (dict(lr_schedule=dict(name="exponential", decay_steps=2, gamma=0.5)), exponential_rates),
        (dict(lr_schedule=dict(name="cosine", min_lr=0.01)), cosine_rates),
        (dict(lr_warmup=4), warmup_rates),
        (
            dict(lr_schedule=dict(name="step", step_size=2, gamma=0.5), lr_warmup=3),
            warmup_step_rates,
        ),
    ],
    ids=["step", "exponential", "cosine", "warmup", "warmup+step"],
)
def test_schedules_set_the_rate_of_each_update_without_recompiling(
    monkeypatch, options, closed_form
):
    compiled = []
    function = pytensor.function

    def counting(*args, **kwargs):
        compiled.append(1)
        return function(*args, **kwargs)

    monkeypatch.setattr(pytensor, "function", counting)
    x, y = data()
    graph, loss, inputs, values = linear()
    functions = Functions()
    t = trainkit.Trainer(
        graph,
        loss,
        inputs,
        algo="sgd",
        learning_rate=LR,
        batch_size=8,
        shuffle=False,
        validate_every=1,
        max_updates=UPDATES,
        restore_best=False,
        callbacks=[functions],
        progress=False,
        log=False,
        **options,
    )
    pairs = list(t.itertrain([x, y]))
    rates = [np.float32(closed_form(s)) for s in range(UPDATES)]
    assert [tm["lr"] for tm, _ in pairs] == [float(r) for r in rates]
    assert len(set(rates)) > 2
    batches = [(x[i % 4 * 8 : i % 4 * 8 + 8], y[i % 4 * 8 : i % 4 * 8 + 8]) for i in range(UPDATES)]
    expected = sgd(values, batches, [float(r) for r in rates])
    for name, p in t.graph.params.items():
        np.testing.assert_allclose(p.get_value(), expected[name], rtol=2e-5, atol=1e-6)
    assert len(compiled) == 2  # the training and the validation function, once
    assert all(f is functions.seen[0] for f in functions.seen)


def test_plateau_follows_the_validation_losses():
    x, y = data()
    graph, loss, inputs, values = linear()
    plateau = dict(name="plateau", factor=0.5, patience=1, threshold=0.2, cooldown=1)
    t = trainkit.Trainer(
        graph,
        loss,
        inputs,
        algo="sgd",
        learning_rate=LR,
        batch_size=8,
        shuffle=False,
        validate_every=1,
        max_updates=12,
        restore_best=False,
        patience=None,
        lr_schedule=plateau,
        progress=False,
        log=False,
    )
    pairs = list(t.itertrain([x, y]))
    # PyTorch's ReduceLROnPlateau(mode='min', threshold_mode='rel'), one step per validation
    best, bad, cooldown_left, lr = math.inf, 0, 0, LR
    rates = []
    for _, vm in pairs:
        rates.append(lr)
        if vm["loss"] < best * (1 - 0.2):
            best, bad = vm["loss"], 0
        else:
            bad += 1
        if cooldown_left > 0:
            cooldown_left, bad = cooldown_left - 1, 0
        if bad > 1:
            lr, cooldown_left, bad = max(lr * 0.5, 0.0), 1, 0
    assert [tm["lr"] for tm, _ in pairs] == [float(np.float32(r)) for r in rates]
    assert len(set(rates)) >= 3
    batches = [(x[i % 4 * 8 : i % 4 * 8 + 8], y[i % 4 * 8 : i % 4 * 8 + 8]) for i in range(12)]
    expected = sgd(values, batches, [float(np.float32(r)) for r in rates])
    for name, p in t.graph.params.items():
        np.testing.assert_allclose(p.get_value(), expected[name], rtol=2e-5, atol=1e-6)


def test_a_second_run_of_the_same_trainer_starts_the_schedule_afresh():
    x, y = data()
    graph, loss, inputs, _ = linear()
    plateau = dict(name="plateau", factor=0.5, patience=0, threshold=0.9)
    t = trainkit.Trainer(
        graph,
        loss,
        inputs,
        algo="sgd",
        learning_rate=LR,
        batch_size=8,
        validate_every=1,
        max_updates=4,
        patience=None,
        lr_schedule=plateau,
        progress=False,
        log=False,
    )
    first = [tm["lr"] for tm, _ in t.itertrain([x, y])]
    second = [tm["lr"] for tm, _ in t.itertrain([x, y])]
    assert first[0] == second[0] == pytest.approx(LR)
    assert first[-1] < LR
