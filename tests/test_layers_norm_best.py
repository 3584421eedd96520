"""Batch normalisation's running statistics travel with the best step's parameters.

Early stopping's ``restore_best``, ``keep_best``'s files (with and without
``ema``) and a resumed run's best parameters must give the running mean and
variance recorded at the best validation, not those of the last update.
"""

import numpy as np
import pytest
from helpers import QUIET

import trainkit

OPTIONS = dict(
    algo="sgd",
    learning_rate=0.5,
    batch_size=8,
    shuffle=True,
    seed=3,
    validate_every=1,
    **QUIET,
)
STATE = ("bn.running_mean", "bn.running_var")


def data():
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 2.0, size=(32, 3)).astype("float32")
    y = (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")
    return [x[:24], y[:24]], [x[24:], y[24:]]


class Snapshots:
    """The validation loss and the running statistics at every validation."""

    def __init__(self):
        self.at = {}

    def on_validation(self, trainer, train_metrics, valid_metrics):
        state = {}
        for var in trainer.graph.training.updates:
            if var.name in STATE:
                state[var.name] = np.array(var.get_value())
        self.at[trainer.step] = (valid_metrics["loss"], state)

    def best(self):
        loss, step = min((loss, step) for step, (loss, _) in self.at.items())
        return step, self.at[step][1]


def network():
    return trainkit.Regressor([3, dict(form="batchnorm", name="bn", momentum=0.5), (5, "tanh"), 2])


def test_restore_best_restores_the_best_steps_running_statistics():
    train, valid = data()
    net, snapshots = network(), Snapshots()
    # a large rate makes validation worsen after a while, so the best step is not the last
    net.train(train, valid, max_updates=12, restore_best=True, callbacks=[snapshots], **OPTIONS)
    step, state = snapshots.best()
    assert step != max(snapshots.at), "the best step should not be the last one here"
    assert net.trainer.restored_step == step
    last = snapshots.at[max(snapshots.at)][1]
    for name in STATE:
        assert not np.array_equal(last[name], state[name])
        assert np.array_equal(net.state[name].get_value(), state[name]), name


@pytest.mark.parametrize("ema", [None, 0.7])
def test_best_files_hold_their_steps_running_statistics(tmp_path, ema):
    train, valid = data()
    net, snapshots = network(), Snapshots()
    net.train(
        train,
        valid,
        max_updates=12,
        run_dir=tmp_path,
        keep_best=2,
        ema=ema,
        callbacks=[snapshots],
        **OPTIONS,
    )
    steps = sorted(int(p.stem.split("-")[1]) for p in tmp_path.glob("best-*.npz"))
    assert len(steps) == 2
    for step in steps:
        model = trainkit.load(tmp_path / f"best-{step}.npz")
        for name in STATE:
            assert np.array_equal(model.state[name].get_value(), snapshots.at[step][1][name])


def test_a_resumed_run_restores_the_same_running_statistics(tmp_path):
    train, valid = data()
    reference = network()
    reference.train(train, valid, max_updates=12, restore_best=True, **OPTIONS)
    checkpoint = tmp_path / "ckpt.npz"
    net = network()
    net.train(train, valid, max_updates=7, save_progress=checkpoint, **OPTIONS)
    net = network()
    net.train(
        train,
        valid,
        max_updates=12,
        restore_best=True,
        save_progress=checkpoint,
        resume=checkpoint,
        **OPTIONS,
    )
    for name in STATE:
        assert np.array_equal(net.state[name].get_value(), reference.state[name].get_value())
