"""Checkpoints and ``resume=``: an interrupted run continues to bitwise-identical parameters.

The model has dropout (random state), shuffled batches, Adam (optimizer
state), a plateau schedule (schedule state) and validation every 3 updates
(early-stopping state, metric window); the uninterrupted run is the reference.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import trainkit
from trainkit import archive as checkpoints

N = 14  # updates of the whole run; 5 batches per epoch, validations at 3, 6, 9, 12 and 14

OPTIONS = dict(
    algo="adam",
    learning_rate=0.02,
    batch_size=8,
    shuffle=True,
    seed=3,
    hidden_dropout=0.3,
    validate_every=3,
    lr_schedule=dict(name="plateau", patience=0, factor=0.5, threshold=0.5),
    progress=False,
    log=False,
)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    return [x, (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")]


class Capture:
    """Keeps the trainer, for its state after the run."""

    def on_end(self, trainer):
        self.trainer = trainer


def run(**kwargs):
    """Train a fresh network; (network, yielded pairs, trainer)."""
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    capture = Capture()
    options = dict(OPTIONS, max_updates=N)
    options.update(kwargs)
    options["callbacks"] = [capture, *options.get("callbacks", [])]
    pairs = list(net.itertrain(data(), **options))
    return net, pairs, capture.trainer


def state(trainer):
    """Every training state variable: arrays, and random generator states."""
    out = {}
    for name, var in trainer.state_variables.items():
        value = var.get_value()
        out[name] = value.bit_generator.state if name.endswith("/rng") else np.array(value)
    return out


def plain(pairs):
    return [({k: v for k, v in tm.items() if k != "seconds"}, dict(vm)) for tm, vm in pairs]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_same_state(a, b):
    assert list(a) == list(b)
    for name in a:
        if isinstance(a[name], dict):
            assert a[name] == b[name], name
        else:
            assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    net, pairs, trainer = run(run_dir=run_dir)
    assert [tm["step"] for tm, _ in pairs] == [3, 6, 9, 12, 14]
    assert len({tm["lr"] for tm, _ in pairs}) > 1, "the plateau schedule should have acted"
    return {
        "pairs": pairs,
        "state": state(trainer),
        "params": {n: p.get_value() for n, p in net.params.items()},
        "rows": read_csv(run_dir / "metrics.csv"),
        "best_step": trainer.best_step,
        "stop_reason": trainer.stop_reason,
    }


def check_resumed(reference, path, after, **kwargs):
    net, pairs, trainer = run(resume=path, **kwargs)
    assert plain(pairs) == plain([p for p in reference["pairs"] if p[0]["step"] > after])
    for name, value in reference["params"].items():
        assert np.array_equal(net.params[name].get_value(), value), name
    assert_same_state(state(trainer), reference["state"])
    assert trainer.best_step == reference["best_step"]
    assert trainer.stop_reason == reference["stop_reason"]
    return trainer


def test_a_run_stopped_between_validations_resumes_bitwise(reference, tmp_path):
    path = tmp_path / "run.ckpt"
    # 7 updates: mid-epoch, mid-window; the end of this run validates step 7 too
    _, pairs, _ = run(max_updates=7, save_progress=path, run_dir=tmp_path)
    assert [tm["step"] for tm, _ in pairs] == [3, 6, 7]
    assert checkpoints.load(path)[1]["step"] == 7
    check_resumed(reference, path, 7, run_dir=tmp_path)
    # the metrics file lost the extra row of step 7 and matches the uninterrupted run's
    assert read_csv(tmp_path / "metrics.csv") == reference["rows"]


def test_breaking_out_of_itertrain_saves_a_checkpoint_to_resume_from(reference, tmp_path):
    path = tmp_path / "run.ckpt"
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    for train_metrics, _ in net.itertrain(data(), max_updates=N, save_progress=path, **OPTIONS):
        if train_metrics["step"] == 6:
            break
    assert checkpoints.load(path)[1]["step"] == 6
    check_resumed(reference, path, 6)


class CopyAt:
    """Copies the periodic checkpoint when it has just been written at given steps."""

    def __init__(self, path, steps):
        self.path, self.steps = path, steps

    def on_step_end(self, trainer):
        if trainer.step in self.steps:
            shutil.copy(self.path, f"{self.path}.{trainer.step}")


def test_periodic_checkpoints_resume_bitwise_also_at_a_validation_step(reference, tmp_path):
    path = str(tmp_path / "run.ckpt")
    run(save_progress=path, save_every=2, callbacks=[CopyAt(path, (6, 8))])
    # step 6: right after a validation, which the checkpoint must include
    for step in (6, 8):
        assert checkpoints.load(f"{path}.{step}")[1]["step"] == step
        check_resumed(reference, f"{path}.{step}", step)


def test_save_every_seconds_uses_the_clock(monkeypatch, tmp_path):
    now = [0.0]

    def clock():
        now[0] += 0.4  # every reading of the clock is 0.4 s later
        return now[0]

    monkeypatch.setattr(
        trainkit.training.checkpoints, "time", type("clock", (), {"monotonic": clock})
    )
    saved = []
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    original = trainkit.Trainer.save_checkpoint

    def spy(self, path):
        saved.append(self.step)
        original(self, path)

    monkeypatch.setattr(trainkit.Trainer, "save_checkpoint", spy)
    net.train(data(), max_updates=6, save_progress=tmp_path / "c", save_every="1s", **OPTIONS)
    # one reading at the start, one per update: 1 s has passed at every third update;
    # the final checkpoint would hold the same state as the last, so it is not written again
    assert saved == [3, 6]


def test_a_checkpoint_is_one_complete_file(tmp_path):
    path = tmp_path / "run.ckpt"
    _, _, trainer = run(max_updates=4, save_progress=path, save_every=1)
    assert os.listdir(tmp_path) == ["run.ckpt"]
    arrays, meta = checkpoints.load(path)
    names = {"hid1.w", "hid1.b", "out.w", "out.b"}
    assert {f"state/{n}" for n in names} | {f"state/{n}/adam_m" for n in names} <= set(arrays)
    assert "state/adam/t" in arrays and int(arrays["state/adam/t"]) == 4
    assert set(meta["generators"]) == {"hidden_dropout/rng"}
    assert meta["step"] == 4 and meta["dataset"]["drawn"] == 4
    assert meta["schedule"]["current_lr"] > 0 and meta["window_count"] == 1


# -- errors --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "adam.ckpt"
    run(max_updates=2, save_progress=path)
    return path


@pytest.fixture
def no_compile(monkeypatch):
    def fail(self):
        raise AssertionError("compiled")

    monkeypatch.setattr(trainkit.Trainer, "_compile", fail)


def test_resume_from_a_missing_file_fails_before_compiling(no_compile, tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint at .*nothing.ckpt"):
        run(resume=tmp_path / "nothing.ckpt")


@pytest.mark.parametrize(
    "layers, options, message",
    [
        (
            [3, (4, "tanh"), 2],
            dict(algo="rmsprop"),
            "it was made with algo='adam', this run uses 'rmsprop'",
        ),
        ([3, (5, "tanh"), 2], {}, r"its state differs in hid1.b, hid1.b/adam_m"),
        ([3, (4, "tanh"), 2], dict(hidden_dropout=None), "its state differs in hidden_dropout/rng"),
        (
            [3, (4, "tanh"), 2],
            dict(lr_schedule=None),
            "it was made with lr_schedule 'plateau', this run uses 'constant'",
        ),
    ],
)
def test_resume_from_another_model_or_algorithm_fails_before_compiling(
    no_compile, saved, layers, options, message
):
    net = trainkit.Regressor(layers)
    kwargs = dict(OPTIONS, max_updates=N, resume=saved)
    kwargs.update(options)
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "lr_schedule"}
    with pytest.raises(
        ValueError, match=f"resume: .* does not match this model and optimizer; {message}"
    ):
        net.train(data(), **kwargs)


def test_resume_with_other_batching_fails_before_compiling(no_compile, saved):
    with pytest.raises(
        ValueError,
        match=r"resume: .* was saved training on other data or with "
        r"other batching: state: saved with batch_size 8",
    ):
        run(resume=saved, batch_size=16)


# -- a real interruption -------------------------------------------------------------

SCRIPT = """
import json, sys, time
import numpy as np
import trainkit
from trainkit.training.signals import stop_on_signals

class Slow:
    def on_update(self, trainer):
        time.sleep(0.1)

    def on_end(self, trainer):
        print(json.dumps({"step": trainer.step, "stop_reason": trainer.stop_reason}))

rng = np.random.default_rng(0)
x = rng.normal(size=(40, 3)).astype("float32")
y = (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")
net = trainkit.Regressor([3, (4, "tanh"), 2])
pairs = net.itertrain([x, y], max_updates=int(sys.argv[2]), save_progress=sys.argv[1],
                      save_every=1, callbacks=[Slow()], **json.loads(sys.argv[3]))
with stop_on_signals(net.trainer):
    for _ in pairs:
        pass
"""


def test_sigterm_ends_with_a_final_checkpoint_that_resumes_bitwise(reference, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    path = tmp_path / "run.ckpt"
    process = subprocess.Popen(
        [sys.executable, str(script), str(path), str(N), json.dumps(OPTIONS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["stop_reason"] == "interrupted by SIGTERM"
    step = checkpoints.load(path)[1]["step"]
    assert step == report["step"] and 0 < step < N
    check_resumed(reference, path, step)
