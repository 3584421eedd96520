"""A run's state has owners: Progress, and the parts a checkpoint is made of."""

import json
import math

import numpy as np
import pytest
from helpers import QUIET, linear

import trainkit
from trainkit import archive
from trainkit.training import checkpoints
from trainkit.training.checkpoints import Checkpointer
from trainkit.training.progress import Progress
from trainkit.training.updates import MetricWindow


def test_progress_state_round_trips_through_json():
    progress = Progress()
    progress.step, progress.skipped, progress.elapsed, progress.validated_at = 7, 2, 1.5, 6
    progress.best_metrics = ({"step": 6, "loss": 0.5}, {"loss": 0.25})
    progress.stop_reason, progress.interrupted = "done", "SIGINT"  # not kept: a run ends anew
    again = Progress()
    again.set_state(json.loads(json.dumps(progress.state())))
    assert (again.step, again.skipped, again.elapsed, again.validated_at) == (7, 2, 1.5, 6)
    assert again.best_metrics == progress.best_metrics
    assert again.stop_reason is None and again.interrupted is None


@pytest.mark.parametrize("key, value", [("step", -1), ("skipped", 1.5), ("step", True)])
def test_progress_refuses_a_count_that_is_not_a_count(key, value):
    state = {**Progress().state(), key: value}
    with pytest.raises(ValueError, match=rf"^{key} is {value!r}, not a count$"):
        Progress().set_state(state)


def test_the_metric_window_refuses_a_bad_count():
    with pytest.raises(ValueError, match=r"^window_count is -2, not a count$"):
        MetricWindow().set_state({"sums": None, "count": -2})


def test_the_first_reason_to_stop_wins():
    progress = Progress()
    progress.end("max_updates=3 reached")
    progress.end("no improvement")
    assert progress.stop_reason == "max_updates=3 reached"


def test_processes_agree_on_a_stop_asked_for_elsewhere():
    # a signal on another process: this one stops with the agreed interruption
    progress = Progress()
    progress.agree_on_stop(1.0, [0.0, 1.0, 0.0])
    assert progress.stop_reason == "interrupted by SIGTERM on another process"
    assert progress.interrupted == progress.agreed_interruption == "SIGTERM"
    assert progress.was_interrupted(parallel=True) == "SIGTERM"
    # a callback's request here: its reason, no interruption
    progress = Progress()
    progress.request_stop("enough")
    progress.request_stop("later")
    progress.agree_on_stop(1.0, [0.0, 0.0, 0.0])
    assert progress.stop_reason == "enough" and progress.interrupted is None
    # nobody asked: nothing changes
    progress = Progress()
    progress.agree_on_stop(0.0, [0.0, 0.0, 0.0])
    assert progress.stop_reason is None


def test_signal_flags_count_this_process_interruption():
    progress = Progress()
    assert progress.signal_flags() == [0.0, 0.0, 0.0]
    progress.interrupted = "SIGHUP"
    assert progress.signal_flags() == [0.0, 0.0, 1.0]


def test_non_finite_counts_a_skip_or_raises_with_the_update_named():
    progress = Progress()
    progress.step = 4
    progress.non_finite("skip", epoch=0, index=2)
    assert progress.skipped == 1 and progress.stop_reason is None
    progress.non_finite("stop", epoch=1, index=0)
    assert progress.stop_reason == (
        "non-finite loss or gradient at update 5 (epoch 2, batch 1) (nan_policy='stop')"
    )
    with pytest.raises(FloatingPointError, match=r"^non-finite loss or gradient at update 5 "):
        progress.non_finite("raise", epoch=1, index=0)


def test_a_run_that_skipped_most_batches_is_judged_diverged(caplog):
    progress = Progress()
    progress.stop_reason, progress.skipped = "max_updates=4 reached", 3
    progress.judge("skip", drawn=4)
    assert progress.diverged and progress.stop_reason.endswith(
        "diverged: 3 of 4 batches were skipped as non-finite (nan_policy='skip')"
    )
    assert "training diverged" in caplog.text


def test_the_trainers_counters_are_views_of_its_progress(tmp_path):
    t = trainer_after(tmp_path, max_updates=3)
    assert t.step == t.progress.step == 3
    assert t.stop_reason == t.progress.stop_reason == "max_updates=3 reached"
    t.step = 5
    assert t.progress.step == 5


def trainer_after(tmp_path, **options):
    graph, loss, inputs, _ = linear()
    t = trainkit.Trainer(graph, loss, inputs, algo="sgd", learning_rate=0.1, **QUIET, **options)
    x = np.random.default_rng(1).normal(size=(40, 3)).astype("float32")
    t.train([x, x @ np.ones((3, 2), "float32")])
    return t


def test_a_checkpoint_is_the_parts_states_in_the_version_1_layout(tmp_path):
    path = tmp_path / "ck.npz"
    t = trainer_after(
        tmp_path, max_updates=5, validate_every=2, save_progress=path, lr_schedule="plateau"
    )
    assert list(t.parts()) == ["progress", "early_stopping", "window", "dataset", "schedule"]
    states = t.state()
    header = checkpoints.to_header(states)
    assert set(header) == {
        "step",
        "skipped",
        "elapsed",
        "dataset",
        "schedule",
        "early_stopping",
        "window",
        "window_count",
        "best_metrics",
    }
    back = checkpoints.from_header(json.loads(json.dumps(header)))
    assert back["progress"] == json.loads(json.dumps(states["progress"]))
    assert back["window"] == states["window"] and back["schedule"] == states["schedule"]
    _, meta = archive.load(path)
    assert meta["version"] == 1 and meta["step"] == 5
    assert checkpoints.from_header(meta)["progress"]["validated_at"] == 4


def test_set_state_leaves_the_parts_it_is_not_given(tmp_path):
    t = trainer_after(tmp_path, max_updates=4, validate_every=2)
    before = t.early_stopping.state()
    t.set_state({"progress": {**t.progress.state(), "step": 9}})
    assert t.step == 9 and t.early_stopping.state() == before
    assert math.isfinite(t.best_loss)


def test_the_checkpointer_saves_the_final_state_once(tmp_path):
    class Counting(Checkpointer):
        saves = 0

        def save(self, trainer):
            self.saves += 1
            self.saved_step = trainer.step

    class Stub:
        step = 3

    saver = Counting(tmp_path / "ck.npz")
    saver.on_start(Stub())
    saver.save_final(Stub())
    saver.save_final(Stub())
    assert saver.saves == 1 and saver.state() == {"saved_step": 3, "final_saved": True}
    again = Counting(tmp_path / "ck.npz")
    again.set_state(saver.state())
    again.save_final(Stub())
    assert again.saves == 0
