"""A run directory's guards: no run silently replaced, one run at a time, no lost work.

``trainkit train`` refuses a directory holding a run unless ``--overwrite``;
holds a lock naming its process while it trains; checkpoints on SIGHUP,
SIGTERM and Ctrl-C whatever ``save_every`` says (and every minute by
default); and ``--resume`` of a finished run says so instead of training.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from test_cli import CLASSIFIER, invoke, write_data
from test_cli_subprocess import command, env

from trainkit import archive
from trainkit.cli import config, run, rundir


@pytest.fixture
def folder(tmp_path):
    write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER)
    return tmp_path


def train(folder, *args):
    return invoke("train", folder / "run.toml", "--run-dir", folder / "run", *args)


@pytest.mark.parametrize(
    "left", ["metrics.csv", "metrics.jsonl", "curves.png", "model.npz", "checkpoint.npz"]
)
def test_a_directory_holding_any_run_file_is_refused_without_overwrite(folder, left):
    (folder / "run").mkdir()
    (folder / "run" / left).write_text("step,loss\n1,0.5\n")
    (folder / "run" / "config.toml").write_text("kept")
    result = train(folder)
    assert result.exit_code == 2
    assert f"already holds a run (config.toml, {left})" in result.stderr
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    assert (folder / "run" / "config.toml").read_text() == "kept"


def test_what_a_failed_start_leaves_is_no_run(folder):
    (folder / "run").mkdir()
    (folder / "run" / "config.toml").write_text("left by a start that failed")
    (folder / "run" / "metrics.csv").write_text("step,loss\n")
    assert rundir.held_files(folder / "run") == []


def test_overwrite_replaces_the_run(folder):
    assert train(folder).exit_code == 0
    rows = (folder / "run" / "metrics.csv").read_text()
    (folder / "run" / "metrics.csv").write_text(rows + rows)
    again = train(folder, "--overwrite")
    assert again.exit_code == 0, again.output
    assert "--overwrite: removed" in again.stderr
    assert (folder / "run" / "metrics.csv").read_text().count("\n") == rows.count("\n")


def test_resume_and_overwrite_together_are_refused(folder):
    result = train(folder, "--resume", "--overwrite")
    assert result.exit_code == 2
    assert "--resume and --overwrite" in result.stderr


def test_a_second_run_names_who_holds_the_lock(folder):
    (folder / "run").mkdir()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": 0}
    (folder / "run" / rundir.LOCK_NAME).write_text(json.dumps(holder))
    result = train(folder)
    assert result.exit_code == 2
    assert f"in use by another trainkit run (pid {os.getpid()} on {socket.gethostname()}" in (
        result.stderr
    )
    assert "started 1970-01-01 00:00:00 UTC" in result.stderr
    assert not (folder / "run" / "metrics.csv").exists()


def test_a_stale_lock_is_taken_over_with_a_note(folder):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "run").mkdir()
    holder = {"pid": dead.pid, "host": socket.gethostname(), "started": time.time()}
    (folder / "run" / rundir.LOCK_NAME).write_text(json.dumps(holder))
    result = train(folder)
    assert result.exit_code == 0, result.output
    assert f"took over a stale lock (pid {dead.pid}" in result.stderr
    assert not (folder / "run" / rundir.LOCK_NAME).exists()  # released at the end


def test_the_lock_is_released_after_an_error(folder):
    (folder / "run.toml").write_text(CLASSIFIER.replace('x = "inputs"', 'x = "nothing"'))
    result = train(folder)
    assert result.exit_code == 2
    assert not (folder / "run" / rundir.LOCK_NAME).exists()


def test_runs_checkpoint_every_minute_by_default(folder):
    cfg = config.load(folder / "run.toml")
    result = run.run_config(cfg, folder / "run", echo=None, log=False)
    assert result.trainer.options.save_every == ("seconds", 60.0)
    assert run.DEFAULT_SAVE_EVERY == "60s"


RECURRENT = """\
[model]
kind = "Regressor"
layers = [3, {size = 8, form = "rnn"}, 2]

[data]
train = "seq.npz"
valid_fraction = 0.25

[training]
algo = "adam"
learning_rate = 0.01
batch_size = 8
max_updates = 100000
validate_every = 5
patience = "none"
"""


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_signal_leaves_a_checkpoint_with_the_default_settings(tmp_path, signum):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10, 3)).astype("float32")
    np.savez(tmp_path / "seq.npz", x=x, y=np.cumsum(x, axis=1)[..., :2] / 5)
    (tmp_path / "seq.toml").write_text(RECURRENT)  # no save_every
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        command("train", "seq.toml", "--run-dir", run_dir),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    metrics = run_dir / "metrics.csv"
    while not (metrics.exists() and metrics.read_text().count("\n") > 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no validation within 120 s"
        time.sleep(0.01)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in out and "--resume --run-dir" in out
    step = archive.load(run_dir / "checkpoint.npz")[1]["step"]
    assert step >= 10
    assert not (run_dir / rundir.LOCK_NAME).exists()
    limit = f"training.max_updates={step + 3}"
    resumed = invoke("train", "--resume", "--run-dir", run_dir, "--set", limit)
    assert resumed.exit_code == 0, resumed.output
    assert f"stopped after {step + 3} updates" in resumed.stdout
    assert (run_dir / "model.npz").exists()


PATIENT = CLASSIFIER.replace("max_updates = 12", "max_updates = 1000\npatience = 1").replace(
    "validate_every = 4", "validate_every = 2\nmin_improvement = 0.9"
)


@pytest.mark.parametrize("text", [CLASSIFIER, PATIENT], ids=["max_updates", "patience"])
def test_resume_of_a_finished_run_says_it_is_finished(folder, text):
    (folder / "run.toml").write_text(text)
    assert train(folder).exit_code == 0
    model = folder / "run" / "model.npz"
    before = model.read_bytes(), archive.load(folder / "run" / "checkpoint.npz")[1]["step"]
    result = invoke("train", "--resume", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.output
    assert "the run is finished (" in result.stdout
    assert "nothing was trained" in result.stdout
    assert "interrupted" not in result.output
    assert model.read_bytes() == before[0]
    assert archive.load(folder / "run" / "checkpoint.npz")[1]["step"] == before[1]
