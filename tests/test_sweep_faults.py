"""``trainkit sweep`` under faults (issue 15): another working directory, a stale
journal lock, a truncated or damaged journal, Ctrl-C, reruns with a seed,
failing trials, and a sweep file given to ``trainkit train``."""

import json
import os
import signal
import subprocess
import sys
import time

import click
import numpy as np
import pytest
from test_sweep import SWEEP, invoke, load_study, write_data

optuna = pytest.importorskip("optuna", reason="the sweep extra (pip install 'trainkit[sweep]')")

from trainkit.cli import plotting, run  # noqa: E402
from trainkit.cli import sweep as sweeping  # noqa: E402
from trainkit.cli.sweep.spec import parse_text, trial_seed  # noqa: E402

#: one quick trial per point: no pruning, 10 updates
QUICK = SWEEP.replace("max_updates = 30", "max_updates = 10").replace(
    'pruner = {name = "threshold", upper = 4.0, n_warmup_steps = 5}', 'pruner = "none"'
)
RANDOM = QUICK.replace('sampler = "grid"', 'sampler = "random"\nseed = 0').replace(
    '"training.learning_rate" = [1e-7, 0.05]',
    '"training.learning_rate" = {low = 1e-4, high = 1e-1, log = true}',
)


@pytest.fixture
def folder(tmp_path):
    write_data(tmp_path)
    (tmp_path / "sweep.toml").write_text(QUICK)
    return tmp_path


def sweep(folder, *args, config="sweep.toml"):
    return invoke("sweep", folder / config, "--run-dir", folder / "s", *args)


def journal_lines(path):
    return path.read_bytes().splitlines(keepends=True)


# -- where the journal lives ----------------------------------------------------------


def test_the_journal_path_is_absolute_and_status_works_from_elsewhere(folder, monkeypatch):
    monkeypatch.chdir(folder)
    result = invoke("sweep", "sweep.toml", "--trials", 1, "--run-dir", "s")
    assert result.exit_code == 0, result.output + result.stderr
    info = json.loads((folder / "s" / "sweep.json").read_text())
    assert info["storage"] == os.fspath(folder / "s" / "journal.log")
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status = invoke("sweep", "--status", folder / "s")
    assert status.exit_code == 0, status.output + status.stderr
    assert "1 complete" in status.output
    assert not any(elsewhere.rglob("*"))  # no empty journal created here


def test_a_relative_storage_path_is_stored_absolute(folder, monkeypatch):
    monkeypatch.chdir(folder)
    result = invoke("sweep", "sweep.toml", "--trials", 1, "--run-dir", "s", "--storage", "j.log")
    assert result.exit_code == 0, result.output + result.stderr
    info = json.loads((folder / "s" / "sweep.json").read_text())
    assert info["storage"] == os.fspath(folder / "j.log")
    monkeypatch.chdir(folder / "s")
    assert "1 complete" in invoke("sweep", "--status", folder / "s").output


def test_status_of_a_sweep_whose_journal_is_gone_is_one_line(folder):
    assert sweep(folder, "--trials", 1).exit_code == 0
    (folder / "s" / "journal.log").unlink()
    status = invoke("sweep", "--status", folder / "s")
    assert status.exit_code == 2
    assert f"its journal {folder / 's' / 'journal.log'} is missing" in status.stderr
    assert not (folder / "s" / "journal.log").exists()


def test_a_stale_journal_lock_is_released(folder):
    (folder / "s").mkdir()
    journal = folder / "s" / "journal.log"
    journal.write_bytes(b"")
    lock = folder / "s" / "journal.log.lock"
    os.symlink("s/journal.log", lock)  # relative, as sweeps made it: dangles from s/
    old = time.time() - 3600
    os.utime(lock, (old, old), follow_symlinks=False)
    process = subprocess.run(
        [sys.executable, "-m", "trainkit.cli", "sweep", "sweep.toml", "--trials", "1",
         "--run-dir", "s"],
        cwd=folder, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTENSOR_FLAGS="mode=FAST_COMPILE,floatX=float32,cxx="),
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert f"{lock}: released a stale journal lock" in process.stderr
    assert not os.path.lexists(lock)


# -- a truncated or damaged journal ----------------------------------------------------


def test_a_truncated_journal_is_repaired_before_anything_is_appended(folder):
    assert sweep(folder, "--trials", 1).exit_code == 0
    journal = folder / "s" / "journal.log"
    good = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "cut sho')  # a write cut short
    status = invoke("sweep", "--status", folder / "s")
    assert status.exit_code == 0, status.stderr
    assert "removed an incomplete last record (36 bytes" in status.stderr
    assert "1 complete" in status.output
    assert journal.read_bytes() == good
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "cut sho')
    again = sweep(folder, "--trials", 2)
    assert again.exit_code == 0, again.output + again.stderr
    for line in journal_lines(journal):  # every record whole: nothing appended to a partial one
        assert line.endswith(b"\n") and isinstance(json.loads(line), dict)
    assert [t.state.name for t in load_study(folder / "s").get_trials()] == ["COMPLETE"] * 2


def test_a_damaged_journal_is_refused_naming_the_file_and_line(folder):
    assert sweep(folder, "--trials", 1).exit_code == 0
    journal = folder / "s" / "journal.log"
    lines = journal_lines(journal)
    journal.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    for result in (invoke("sweep", "--status", folder / "s"), sweep(folder, "--trials", 2)):
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {journal}: line 2: not a journal record")


# -- Ctrl-C ----------------------------------------------------------------------------


class _KillAt:
    """A callback sending this process SIGINT after update ``step`` (as Ctrl-C would)."""

    def __init__(self, step):
        self.step = step

    def on_update(self, trainer):
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_in_training_leaves_no_trial_running_and_it_is_retried(folder):
    with pytest.raises(click.exceptions.Exit) as stopped:
        sweeping.run_sweep(
            folder / "sweep.toml", trials=1, run_dir=folder / "s", callbacks=[_KillAt(3)],
            echo=lambda *a, **k: None,
        )  # fmt: skip
    assert stopped.value.exit_code == 130
    (trial,) = load_study(folder / "s").get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["interrupted"] == "SIGINT"
    status = invoke("sweep", "--status", folder / "s")
    assert "why: interrupted by SIGINT" in status.output
    again = sweep(folder, "--trials", 1)
    assert again.exit_code == 0, again.output + again.stderr
    assert "trial 0: it was SIGINT; retrying it" in again.output
    states = [t.state.name for t in load_study(folder / "s").get_trials()]
    assert states == ["FAIL", "COMPLETE"]


def test_ctrl_c_after_training_keeps_the_trials_result(folder, monkeypatch):
    drawn = plotting.plot_run

    def plot_then_ctrl_c(*args, **kwargs):  # after training, before the model is saved
        os.kill(os.getpid(), signal.SIGINT)
        return drawn(*args, **kwargs)

    monkeypatch.setattr(run.plotting, "plot_run", plot_then_ctrl_c)
    with pytest.raises(click.exceptions.Exit) as stopped:
        sweeping.run_sweep(
            folder / "sweep.toml", trials=4, run_dir=folder / "s", echo=lambda *a, **k: None
        )
    assert stopped.value.exit_code == 130
    (trial,) = load_study(folder / "s").get_trials()  # the worker stopped after it
    assert trial.state.name == "COMPLETE" and np.isfinite(trial.value)
    assert (folder / "s" / "trial-0" / "model.npz").exists()


# -- seeds -----------------------------------------------------------------------------


def test_a_seeded_sweep_draws_new_points_when_run_again(folder):
    (folder / "random.toml").write_text(RANDOM)
    assert sweep(folder, "--trials", 3, config="random.toml").exit_code == 0
    result = sweep(folder, "--trials", 6, config="random.toml")
    assert result.exit_code == 0, result.output + result.stderr
    trials = load_study(folder / "s").get_trials()
    rates = [t.params["training.learning_rate"] for t in trials]
    assert len(set(rates)) == 6, rates  # trials 3-5 do not replay trials 0-2


def test_the_seed_of_a_trial_depends_on_its_number_only(folder):
    spec = parse_text(RANDOM, "random.toml", folder)
    one, two = spec.sampler(worker=0), spec.sampler(worker=5)
    study = optuna.create_study()
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING)
    trial.number = 7
    draws = []
    for sampler in (one, two):
        sampler.before_trial(study, trial)
        draws.append(sampler._rng.rng.uniform())
    assert draws[0] == draws[1]
    assert trial_seed(0, 7) != trial_seed(0, 8)


# -- failing trials ----------------------------------------------------------------------


def test_data_that_does_not_fit_a_corner_is_refused_before_the_first_trial(folder):
    (folder / "bad.toml").write_text(
        QUICK.replace('"model.layers" = [[4, [6, "tanh"], 1], [4, 8, 1]]',
                      '"model.layers" = [[4, 8, 1], [5, 8, 1]]')
    )  # fmt: skip
    result = sweep(folder, "--trials", 2, config="bad.toml")
    assert result.exit_code == 2
    assert "model.layers = [5, 8, 1]" in result.stderr and "4 features" in result.stderr
    assert not (folder / "s" / "journal.log").exists()


def test_failing_trials_are_one_line_each_and_a_sweep_of_failures_exits_1(folder):
    failing = QUICK.replace(
        '"training.learning_rate" = [1e-7, 0.05]', '"training.learning_rate" = [1e30, 1e31]'
    ).replace("save_every = 5", 'save_every = 5\nnan_policy = "raise"\nmax_gradient_norm = 0')
    failing = failing.replace('"model.layers" = [[4, [6, "tanh"], 1], [4, 8, 1]]', "")
    (folder / "fail.toml").write_text(failing)
    result = sweep(folder, "--trials", 2, config="fail.toml")
    assert result.exit_code == 1, result.output + result.stderr
    lines = [line for line in result.output.splitlines() if " failed: " in line]
    assert [line.split(" failed: ")[0] for line in lines] == ["trial 0", "trial 1"]
    assert "non-finite loss" in lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert "all 2 trials failed" in result.stderr
    status = invoke("sweep", "--status", folder / "s")
    assert status.output.count("why: non-finite loss") == 2


def test_train_ignores_a_sweep_section_with_a_note(folder):
    result = invoke("train", folder / "sweep.toml", "--run-dir", folder / "one")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"note: {folder / 'sweep.toml'}: [sweep] ignored" in result.stderr
    assert "trainkit sweep" in result.stderr
