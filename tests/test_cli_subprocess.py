"""The ``trainkit`` command as a real process: train, predict, errors, a killed run resumed.

Subprocesses get the test flags explicitly (float32, float64 refused, no C
compiler) and compile with trainkit's default backend (JAX), as a user's do.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from test_cli import CLASSIFIER, runner, write_data

import trainkit
from trainkit import archive as checkpoints
from trainkit import cli
from trainkit.cli import plotting

ROOT = Path(__file__).resolve().parent.parent
FLAGS = "floatX=float32,warn_float64=raise,cxx="

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
max_updates = 300
validate_every = 25
save_every = 10
hidden_dropout = 0.1
patience = "none"
"""


def env():
    environment = dict(os.environ, PYTENSOR_FLAGS=FLAGS)
    environment.pop("OMP_NUM_THREADS", None)
    return environment


def command(*args, entry=("-m", "trainkit.cli")):
    return [sys.executable, *entry, *[str(a) for a in args]]


def run(*args, cwd, **kwargs):
    return subprocess.run(
        command(*args, **kwargs), cwd=cwd, env=env(), capture_output=True, text=True, timeout=300
    )


def test_train_then_predict_in_fresh_processes(tmp_path):
    x, _ = write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER)
    trained = run("train", "run.toml", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "run directory: runs/run" in trained.stdout
    assert "held-out accuracy" in trained.stdout
    run_dir = tmp_path / "runs" / "run"
    assert {"config.toml", "metrics.csv", "checkpoint.npz", "model.npz", "curves.png"} <= {
        p.name for p in run_dir.iterdir()
    }
    # the checkout's entry script, as a user without the console script would run it
    predicted = run(
        "predict",
        run_dir,
        "x.npy",
        "-o",
        "labels.npy",
        cwd=tmp_path,
        entry=[str(ROOT / "scripts" / "trainkit")],
    )
    assert predicted.returncode == 0, predicted.stderr
    assert "wrote 64 predictions (64,) to labels.npy" in predicted.stdout
    net = trainkit.load(run_dir / "model.npz")
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), net.predict(x))


def test_a_bad_config_is_one_line_on_stderr_and_status_2(tmp_path):
    write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER.replace("max_norm", "max_nrom"))
    result = run("train", "run.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: run.toml: training.max_nrom: unknown keyword argument; it is not a hyperparameter of adam, "
        "a regularizer or a trainer option (closest: max_norm)"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "runs").exists()


def test_resume_continues_a_killed_run_to_the_same_parameters(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 30, 3)).astype("float32")
    np.savez(tmp_path / "seq.npz", x=x, y=np.cumsum(x, axis=1)[..., :2] / 5)
    (tmp_path / "seq.toml").write_text(RECURRENT)

    # the run to kill has no end of its own (so it cannot finish before the signal)
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        command("train", "seq.toml", "--run-dir", killed, "--set", "training.max_updates=100000"),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.npz").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "interrupted by SIGTERM" in out and "--resume --run-dir" in out
    assert not (killed / "model.npz").exists()
    stopped_at = checkpoints.load(killed / "checkpoint.npz")[1]["step"]
    assert 10 <= stopped_at < 300

    resumed = runner().invoke(
        cli.cli,
        ["train", "--resume", "--run-dir", str(killed), "--set", "training.max_updates=300"],
    )
    assert resumed.exit_code == 0, resumed.output
    assert "(resuming)" in resumed.stdout
    full = tmp_path / "full"
    whole = runner().invoke(cli.cli, ["train", str(tmp_path / "seq.toml"), "--run-dir", str(full)])
    assert whole.exit_code == 0, whole.output

    for run_dir in (killed, full):
        assert checkpoints.load(run_dir / "checkpoint.npz")[1]["step"] == 300
    a, _ = checkpoints.load(killed / "model.npz")
    b, _ = checkpoints.load(full / "model.npz")
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    _, rows_a = plotting.read_metrics(killed)
    _, rows_b = plotting.read_metrics(full)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] == list(range(25, 301, 25))
    assert [r["valid_loss"] for r in rows_a] == [r["valid_loss"] for r in rows_b]
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]
