"""What the loop shows and writes: progress, log lines, metrics files, callbacks, signals."""

import csv
import json
import logging
import os
import signal

import numpy as np
import pytest
from helpers import linear

import trainkit
from trainkit import archive as checkpoints
from trainkit.training.callbacks import format_metrics
from trainkit.training.signals import stop_on_signals


def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype("float32")
    return [x, (x[:, :2] - 2 * x[:, 2:]).astype("float32")]


def make(**kwargs):
    graph, loss, inputs, _ = linear()
    options = dict(algo="sgd", learning_rate=0.05, batch_size=8, progress=False, log=False)
    options.update(kwargs)
    return trainkit.Trainer(graph, loss, inputs, **options)


# -- progress and log lines ------------------------------------------------------------


def test_progress_false_and_log_false_print_nothing(capfd):
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    x, y = data()
    net.train(
        [x, y],
        algo="adam",
        max_updates=6,
        batch_size=8,
        hidden_dropout=0.2,
        progress=False,
        log=False,
    )
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_log_lines_are_logging_records_the_library_never_prints(capfd, caplog):
    # issue 7: log lines go through `logging` (the command line shows them)
    caplog.set_level(logging.INFO, logger="trainkit")
    pairs = list(make(max_updates=12, log=True).itertrain(data()))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    lines = [r.getMessage() for r in caplog.records if r.name == "trainkit"]
    assert len(lines) == len(pairs) + 1 == 4
    for line, (tm, vm) in zip(lines, pairs, strict=False):
        assert line.startswith(f"step {tm['step']} epoch {tm['epoch']} lr 0.05 | train ")
        assert f"| valid {format_metrics(vm)}" in line
        assert f"loss {tm['loss']:.4g}" in line
    assert lines[0].endswith(" *")  # the first validation is a new best
    assert lines[-1] == "training ended after 12 updates: max_updates=12 reached"


def test_the_progress_bar_counts_updates_on_stderr(capfd):
    make(max_updates=12, progress=True).train(data())
    out, err = capfd.readouterr()
    assert out == ""
    assert "0/12 [" in err and "upd/s" in err  # leave=False: the bar is cleared at the end


# -- metrics files ---------------------------------------------------------------------


def row_of(tm, vm):
    row = {k: tm[k] for k in ("step", "epoch", "lr", "seconds")}
    row.update({f"train_{k}": v for k, v in tm.items() if k not in row})
    row.update({f"valid_{k}": v for k, v in vm.items()})
    return row


def test_a_csv_file_gets_one_row_per_validation_holding_the_yielded_metrics(tmp_path):
    pairs = list(make(max_updates=12, run_dir=tmp_path / "run").itertrain(data()))
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    expected = [row_of(tm, vm) for tm, vm in pairs]
    assert (
        reader.fieldnames
        == list(expected[0])
        == [
            "step",
            "epoch",
            "lr",
            "seconds",
            "train_skipped",
            "train_loss",
            "train_base",
            "valid_loss",
            "valid_base",
        ]
    )
    assert len(rows) == len(expected) == 3
    for row, want in zip(rows, expected, strict=True):
        assert {k: float(v) for k, v in row.items()} == want


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_a_jsonl_file_is_truncated_to_the_checkpoint_on_resume(tmp_path):
    whole = list(
        make(
            max_updates=10, validate_every=3, run_dir=tmp_path / "a", metrics_format="jsonl"
        ).itertrain(data())
    )
    assert jsonl(tmp_path / "a" / "metrics.jsonl") == [row_of(tm, vm) for tm, vm in whole]

    options = dict(
        validate_every=3,
        run_dir=tmp_path / "b",
        metrics_format="jsonl",
        save_progress=tmp_path / "ckpt",
    )
    first = list(make(max_updates=4, **options).itertrain(data()))
    assert [tm["step"] for tm, _ in first] == [3, 4]
    second = list(make(max_updates=10, resume=tmp_path / "ckpt", **options).itertrain(data()))
    assert [tm["step"] for tm, _ in second] == [6, 9, 10]

    def plain(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert plain(jsonl(tmp_path / "b" / "metrics.jsonl")) == plain(
        jsonl(tmp_path / "a" / "metrics.jsonl")
    )


def test_a_fresh_run_starts_a_new_metrics_file(tmp_path):
    for _ in range(2):
        pairs = list(make(max_updates=5, run_dir=tmp_path).itertrain(data()))
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(pairs) == 1


# -- user callbacks --------------------------------------------------------------------


class Recorder:
    def __init__(self, events):
        self.events = events

    def on_start(self, trainer):
        self.events.append(("start", trainer.step))

    def on_update(self, trainer):
        self.events.append(("update", trainer.step))

    def on_validation(self, trainer, train_metrics, valid_metrics):
        assert train_metrics["step"] == trainer.step
        self.events.append(("validation", trainer.step))

    def on_step_end(self, trainer):
        self.events.append(("step_end", trainer.step))

    def on_end(self, trainer):
        self.events.append(("end", trainer.stop_reason))


class OnlyEnd:
    def __init__(self, events):
        self.events = events

    def on_end(self, trainer):
        self.events.append(("only_end", trainer.step))


def test_user_callbacks_are_called_in_order():
    events = []
    t = make(max_updates=5, validate_every=2, callbacks=[Recorder(events), OnlyEnd(events)])
    for tm, _ in t.itertrain(data()):
        events.append(("yield", tm["step"]))
    assert events == [
        ("start", 0),
        ("update", 1),
        ("step_end", 1),
        ("update", 2),
        ("validation", 2),
        ("step_end", 2),
        ("yield", 2),
        ("update", 3),
        ("step_end", 3),
        ("update", 4),
        ("validation", 4),
        ("step_end", 4),
        ("yield", 4),
        ("update", 5),
        ("step_end", 5),
        ("validation", 5),
        ("yield", 5),  # the end of the run is validated
        ("end", "max_updates=5 reached"),
        ("only_end", 5),
    ]


def test_an_object_without_hooks_is_not_a_callback():
    with pytest.raises(
        ValueError,
        match=r"callbacks: item 1: a callback must have at least one "
        r"of the methods on_start, on_update",
    ):
        make(max_updates=1, callbacks=[OnlyEnd([]), object()])


# -- stopping from outside: the caller, signals, errors ------------------------------------


def test_breaking_out_ends_training_and_leaves_ctrl_c_alone_while_suspended(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    events = []
    t = make(
        max_updates=20,
        validate_every=2,
        callbacks=[Recorder(events)],
        save_progress=tmp_path / "ckpt",
    )
    pairs = t.itertrain(data())
    next(pairs)
    # suspended at a yield: the caller's own Ctrl-C handling is in place
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    next(pairs)
    pairs.close()
    assert events[-1] == ("end", "stopped by the caller")
    assert t.step == 4 and checkpoints.load(tmp_path / "ckpt")[1]["step"] == 4
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


class Interrupt:
    def on_update(self, trainer):
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_cleanly_after_the_update_with_a_final_checkpoint(tmp_path):
    # the loop installs no handlers itself (issue 7): its owner opts in
    before = signal.getsignal(signal.SIGINT)
    t = make(
        max_updates=20, validate_every=2, callbacks=[Interrupt()], save_progress=tmp_path / "ckpt"
    )
    with stop_on_signals(t):
        pairs = list(t.itertrain(data()))
    assert t.stop_reason == "interrupted by SIGINT"
    assert t.step == 3 and [tm["step"] for tm, _ in pairs] == [2]  # no validation after it
    assert checkpoints.load(tmp_path / "ckpt")[1]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before


class StopAt:
    def __init__(self, step):
        self.step = step

    def on_update(self, trainer):
        if trainer.step == self.step:
            trainer.stop("enough")


def test_a_callback_ends_training_with_trainer_stop(tmp_path):
    t = make(max_updates=20, validate_every=5, callbacks=[StopAt(3)], save_progress=tmp_path / "c")
    pairs = list(t.itertrain(data()))
    assert t.stop_reason == "enough" and t.step == 3
    assert [tm["step"] for tm, _ in pairs] == [3]  # the stopped state is validated
    assert checkpoints.load(tmp_path / "c")[1]["step"] == 3


def test_the_loop_installs_no_signal_handlers():
    seen = []

    class Look:
        def on_update(self, trainer):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    make(max_updates=2, callbacks=[Look()]).train(data())
    assert seen == [before, before]


class Fail:
    def on_update(self, trainer):
        if trainer.step == 3:
            raise RuntimeError("callback failed")


def test_an_exception_ends_training_without_saving_or_restoring(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    events = []
    snapshot = {}

    class Keep:
        def on_update(self, trainer):
            snapshot.update({n: p.get_value() for n, p in trainer.graph.params.items()})

    t = make(
        max_updates=20,
        validate_every=1,
        callbacks=[Keep(), Fail(), Recorder(events)],
        save_progress=tmp_path / "ckpt",
        learning_rate=2.0,
    )  # diverges: the best is early
    with pytest.raises(RuntimeError, match="callback failed"):
        t.train(data())
    assert t.best_step < t.step == 3
    for name, p in t.graph.params.items():
        assert np.array_equal(p.get_value(), snapshot[name])
    assert not os.path.exists(tmp_path / "ckpt")
    assert events[-1] == ("end", "RuntimeError: callback failed")
    assert signal.getsignal(signal.SIGINT) is before
