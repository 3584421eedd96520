"""Monitors, gradient norms and validation on the clean graph, against numpy forward passes."""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt
import pytest
from helpers import QUIET, linear

import trainkit


def forward(values, x):
    """numpy twin of Regressor([3, (4, 'tanh'), 2]): hid1:out and out:out."""
    h = np.tanh(x.astype(np.float64) @ values["hid1.w"] + values["hid1.b"])
    return h, h @ values["out.w"] + values["out.b"]


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x[:, :2] * 2 - x[:, 2:]).astype("float32")


class Snapshots:
    def __init__(self):
        self.at = OrderedDict()

    def on_start(self, trainer):
        self.at[0] = {n: p.get_value() for n, p in trainer.graph.params.items()}

    def on_validation(self, trainer, train_metrics, valid_metrics):
        self.at[trainer.step] = {n: p.get_value() for n, p in trainer.graph.params.items()}


def sq(z):
    return pt.mean(pt.sqr(z))


def test_monitors_and_validation_use_the_clean_graph_while_training_uses_dropout():
    x, y = data(16, 0)
    xv, yv = data(24, 1)  # two validation batches (16 and 8)
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    snapshots = Snapshots()
    pairs = list(
        net.itertrain(
            [x, y],
            [xv, yv],
            algo="sgd",
            learning_rate=0.1,
            batch_size=16,
            validate_every=1,
            max_updates=3,
            hidden_dropout=0.9,
            restore_best=False,
            callbacks=[snapshots],
            monitors={"hid1:out": ("<0.1", "<0.9"), "out:out": sq},
            **QUIET,
        )
    )
    assert [tm["step"] for tm, _ in pairs] == [1, 2, 3]
    names = ["hid1:out<0.1", "hid1:out<0.9", "out:out.sq"]
    for tm, vm in pairs:
        assert list(vm) == ["loss", "mse", *names]
        assert list(tm)[-3:] == names
        h, out = forward(snapshots.at[tm["step"]], xv)
        expected = {
            "loss": np.mean((out - yv) ** 2),
            "mse": np.mean((out - yv) ** 2),
            "hid1:out<0.1": np.mean(h < 0.1),
            "hid1:out<0.9": np.mean(h < 0.9),
            "out:out.sq": np.mean(out**2),
        }
        for name, value in expected.items():
            np.testing.assert_allclose(vm[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    # the first update's training metrics: its batch at the initial parameters, with dropout
    h, out = forward(snapshots.at[0], x)
    first = pairs[0][0]
    assert abs(first["mse"] - np.mean((out - y) ** 2)) > 0.05
    assert first["hid1:out<0.1"] > np.mean(h < 0.1) + 0.3


@pytest.mark.parametrize("clip", [None, 0.05])
def test_monitor_gradients_reports_the_norm_of_the_gradients_applied(clip):
    x, y = data(8, 2)
    graph, loss, inputs, _ = linear(bias=0.1)
    before = {n: p.get_value() for n, p in graph.params.items()}
    extra = {} if clip is None else {"max_total_gradient_norm": clip}
    t = trainkit.Trainer(
        graph,
        loss,
        inputs,
        algo="sgd",
        learning_rate=0.1,
        batch_size=8,
        max_updates=1,
        monitor_gradients=True,
        **QUIET,
        **extra,
    )
    tm, vm = t.train([x, y])
    err = x.astype(np.float64) @ before["out.w"] + before["out.b"] - y
    gw, gb = 2 / err.size * x.T @ err, 2 / err.size * err.sum(0)
    norm = np.sqrt(np.sum(gw**2) + np.sum(gb**2))
    expected = norm if clip is None else min(norm, clip)
    assert norm > 0.05
    np.testing.assert_allclose(tm["grad_norm"], expected, rtol=1e-5)
    assert "grad_norm" not in vm


def test_a_monitor_pattern_that_matches_nothing_fails_before_compiling(monkeypatch):
    def no_compile(self):
        raise AssertionError("compiled")

    monkeypatch.setattr(trainkit.Trainer, "_compile", no_compile)
    x, y = data(8, 0)
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    with pytest.raises(ValueError, match=r"monitors.*'hid9:out'.*closest: hid1:out"):
        net.train([x, y], monitors={"hid9:out": "mean"}, max_updates=1, **QUIET)
    with pytest.raises(ValueError, match=r"unknown statistic 'mena'.*closest: mean"):
        net.train([x, y], monitors={"hid1:out": "mena"}, max_updates=1, **QUIET)
