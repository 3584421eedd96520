"""``trainkit sweep`` and ``trainkit.tuning`` on Optuna (offline, tiny models, test flags)."""

import csv
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import optuna  # a test dependency (the test extra): never skipped silently
import pytest
from click.testing import CliRunner

import trainkit
from trainkit import tuning
from trainkit.cli import commands as cli
from trainkit.cli import config
from trainkit.cli import sweep as sweeping
from trainkit.cli.errors import ConfigError
from trainkit.cli.sweep.spec import parse_text
from trainkit.cli.sweep.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent

# lr 1e-7 leaves the validation loss near 5.5 (pruned by the threshold at step 5);
# lr 0.05 brings it below 3.2 there, and under 0.5 by step 30
SWEEP = """\
[model]
kind = "Regressor"
layers = [4, [6, "tanh"], 1]
seed = 1

[data]
train = "train.npz"
x = "x"
y = "y"
valid_fraction = 0.25

[training]
algo = "adam"
learning_rate = 0.01
batch_size = 16
max_updates = 30
validate_every = 5
save_every = 5

[sweep]
pruner = {name = "threshold", upper = 4.0, n_warmup_steps = 5}
sampler = "grid"

[sweep.space]
"training.learning_rate" = [1e-7, 0.05]
"model.layers" = [[4, [6, "tanh"], 1], [4, 8, 1]]
"""


def write_data(folder, n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.0])).astype("float32")[:, None]
    np.savez(folder / "train.npz", x=x, y=y)


@pytest.fixture
def folder(tmp_path):
    write_data(tmp_path)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    return tmp_path


def invoke(*args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli.cli, [str(a) for a in args])


def steps_of(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(float(row["step"])) for row in csv.DictReader(f)]


def load_study(sweep_dir, storage=None):
    where = storage or os.fspath(sweep_dir / "journal.log")
    return optuna.load_study(study_name=sweep_dir.name, storage=open_storage(where))


# -- two workers, one journal file ---------------------------------------------------


def test_two_workers_share_one_journal_study(folder):
    sweep_dir = folder / "runs" / "grid"
    result = invoke("sweep", folder / "sweep.toml", "--trials", 4, "--workers", 2,
                    "--run-dir", sweep_dir)  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    study = load_study(sweep_dir)
    trials = study.get_trials()
    assert len(trials) == 4
    # distinct trials: the grid's four points, each once
    points = {tuple(sorted(t.params.items())) for t in trials}
    assert len(points) == 4
    states = [t.state.name for t in trials]
    assert states.count("PRUNED") >= 2 and states.count("COMPLETE") >= 1, states
    for trial in trials:
        run_dir = sweep_dir / f"trial-{trial.number}"
        assert trial.user_attrs["run_dir"] == os.fspath(run_dir)
        for name in ("config.toml", "metrics.csv", "checkpoint.npz", "model.npz"):
            assert (run_dir / name).exists(), (run_dir, name)
        cfg = config.load(run_dir / "config.toml")  # an ordinary config, no [sweep]
        assert cfg.training["learning_rate"] == trial.params["training.learning_rate"]
        if trial.state.name == "PRUNED":
            assert trial.params["training.learning_rate"] == 1e-7 or steps_of(run_dir)[-1] < 30
            assert steps_of(run_dir) == [5]
        else:
            assert steps_of(run_dir) == [5, 10, 15, 20, 25, 30]
    assert (sweep_dir / "journal.log").exists() and (sweep_dir / "sweep.toml").exists()

    # --status: best first
    status = invoke("sweep", "--status", sweep_dir)
    assert status.exit_code == 0, status.output
    rows = [line.split() for line in status.output.splitlines()[2:]]
    assert rows[0][1] == "complete"
    values = [float(r[2]) for r in rows if r[1] == "complete"]
    assert values == sorted(values)
    assert "pruned" in status.output

    # --best: the best trial's config, which `trainkit train` accepts
    best = invoke("sweep", "--best", sweep_dir)
    assert best.exit_code == 0, best.output
    text = (sweep_dir / "best.toml").read_text()
    assert "sweep" not in tomllib.loads(text)
    cfg = config.load(sweep_dir / "best.toml")
    assert cfg.training["learning_rate"] == study.best_trial.params["training.learning_rate"]

    # a trial directory is a run: --resume continues it
    pruned = next(t for t in trials if t.state.name == "PRUNED")
    run_dir = sweep_dir / f"trial-{pruned.number}"
    resumed = invoke("train", "--resume", "--run-dir", run_dir, "--set", "training.max_updates=10")
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert steps_of(run_dir) == [5, 10]


# -- a dead worker's trial resumes from its checkpoint -------------------------------

DIE = """\
import os, socket, sys
from trainkit.cli.sweep import run_sweep

class Die:
    def on_step_end(self, trainer):
        if trainer.step == 10:  # after the checkpoint of step 10
            os._exit(9)

if len(sys.argv) > 3:
    socket.gethostname = lambda: "another-host"  # only the heartbeat can tell it died
run_sweep(sys.argv[1], trials=1, run_dir=sys.argv[2], storage=sys.argv[3] if len(sys.argv) > 3 else None,
          callbacks=[Die()], echo=print)
"""


def kill_a_worker(folder, sweep_dir, storage=None):
    text = SWEEP.replace('sampler = "grid"', 'sampler = "random"\nheartbeat = 1')
    text = text.replace("[1e-7, 0.05]", "[0.05]").replace(", [4, 8, 1]]", "]")
    (folder / "one.toml").write_text(text)
    args = [sys.executable, "-c", DIE, folder / "one.toml", sweep_dir]
    done = subprocess.run(
        [str(a) for a in args + ([storage] if storage else [])],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert done.returncode == 9, done.stdout + done.stderr
    assert steps_of(sweep_dir / "trial-0") == [5, 10]
    return folder / "one.toml"


def check_resumed(sweep_dir, study):
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].user_attrs["run_dir"] == os.fspath(sweep_dir / "trial-0")
    assert not (sweep_dir / "trial-1").exists()
    assert steps_of(sweep_dir / "trial-0") == [5, 10, 15, 20, 25, 30]  # continued, not redone


def test_a_trial_whose_worker_died_resumes_from_its_checkpoint(folder):
    sweep_dir = folder / "runs" / "one"
    path = kill_a_worker(folder, sweep_dir)
    lines = []
    study = sweeping.run_sweep(path, trials=1, run_dir=sweep_dir, echo=lines.append)
    assert any("its process died; retrying it" in line for line in lines), lines
    assert any("(resuming" in line for line in lines), lines
    check_resumed(sweep_dir, study)


def test_with_a_database_the_heartbeat_retries_a_dead_trial(folder):
    sweep_dir = folder / "runs" / "db"
    storage = f"sqlite:///{folder / 'study.db'}"
    path = kill_a_worker(folder, sweep_dir, storage)
    time.sleep(2.5)  # two heartbeats (1 s) missed
    lines = []
    study = sweeping.run_sweep(path, trials=1, run_dir=sweep_dir, storage=storage,
                               echo=lines.append)  # fmt: skip
    assert not any("process died" in line for line in lines)  # not found by pid: by heartbeat
    assert any("(resuming" in line for line in lines), lines
    check_resumed(sweep_dir, study)
    assert "sqlite" in (sweep_dir / "sweep.json").read_text()


# -- the Python API ----------------------------------------------------------------


def test_train_trial_reports_and_prunes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")
    train, valid = [x[:48], y[:48]], [x[48:], y[48:]]
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))

    def objective(trial):
        net = trainkit.Regressor([3, 4, 1], seed=0)
        return tuning.train_trial(
            trial, net, train, valid, algo="adam", max_updates=12, validate_every=3,
            learning_rate=trial.suggest_categorical("learning_rate", [0.05, 1e-7]),
            progress=False, log=False,
        )  # fmt: skip

    study.enqueue_trial({"learning_rate": 0.05})
    study.enqueue_trial({"learning_rate": 1e-7})
    study.optimize(objective, n_trials=2)
    good, bad = study.get_trials()
    assert good.state.name == "COMPLETE" and sorted(good.intermediate_values) == [3, 6, 9, 12]
    assert good.value == min(good.intermediate_values.values())
    assert bad.state.name == "PRUNED" and list(bad.intermediate_values) == [3]


def test_metric_value_names_the_measured_metrics():
    with pytest.raises(tuning.MetricError, match=r"'accc': not measured; metrics are valid_loss"):
        tuning.metric_value("accc", {"step": 1, "loss": 1.0}, {"loss": 1.0})


# -- errors ------------------------------------------------------------------------


def test_missing_optuna_names_the_extra(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    result = invoke("sweep", folder / "sweep.toml", "--run-dir", folder / "runs" / "x")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: optuna is not installed; sweeps need it: pip install 'trainkit[sweep]'"
    )


BASE = '[model]\nkind = "Regressor"\nlayers = [2, 1]\n[data]\nbuiltin = "digits"\n'


@pytest.mark.parametrize(
    "sweep, message",
    [
        ('[sweep.space]\n"training.learning_rat" = [0.1]',
         r'sweep.space."training.learning_rat": not a config key; .*\(closest: training.learning_rate\)'),
        ('[sweep.space]\n"trainig.algo" = ["adam"]',
         r"unknown section 'trainig'; sections are model, data, training \(closest: training.algo"),
        ('[sweep.space]\n"model.layer" = [[2, 1]]', r"\[model\] takes .*\(closest: model.layers\)"),
        ('[sweep.space]\n"training.learning_rate" = {low = 0.1, high = 0.01}',
         r"low must be below high, got low = 0.1, high = 0.01"),
        ('[sweep.space]\n"training.learning_rate" = {low = 0.0, high = 0.1, log = true}',
         r"log = true needs low > 0, got low = 0.0"),
        ('[sweep.space]\n"training.batch_size" = {low = 8, high = 30, step = 8}',
         r"high - low = 22 is not a multiple of step = 8"),
        ('[sweep.space]\n"training.learning_rate" = {low = 0.1, hihg = 0.2}',
         r"hihg: unknown key; a range takes low, high, step, log \(closest: high\)"),
        ('[sweep.space]\n"training.learning_rate" = 0.1',
         r"expected a range \{low = ..., high = ...\} or a list of choices, got 0.1"),
        ('[sweep.space]\n"training.algo" = []', r"an empty list of choices"),
        ('[sweep]\nprunner = "median"\n[sweep.space]\n"training.algo" = ["adam"]',
         r"sweep.prunner: unknown key; .*\(closest: pruner\)"),
        ('[sweep]\npruner = "meadian"\n[sweep.space]\n"training.algo" = ["adam"]',
         r"unknown pruner 'meadian'; .*\(closest: median\)"),
        ('[sweep]\npruner = {name = "median", n_startup = 2}\n[sweep.space]\n"training.algo" = ["adam"]',
         r"sweep.pruner.n_startup: unknown argument of the median pruner; .*\(closest: n_startup_trials\)"),
        ('[sweep]\nmetric = "acc"\n[sweep.space]\n"training.algo" = ["adam"]',
         r"sweep.direction: missing; say whether acc"),
        ('[sweep]\nsampler = "grid"\n[sweep.space]\n"training.learning_rate" = {low = 0.1, high = 0.2}',
         r"the grid sampler takes lists of choices and integer ranges"),
        ('[sweep.space]\n"training.batch_size" = {low = 8, high = 32, step = 0.5}',
         r"an integer range needs an integer step"),
    ],
)  # fmt: skip
def test_bad_sweep_sections_are_one_line_errors(sweep, message):
    with pytest.raises(ConfigError, match=message):
        parse_text(BASE + sweep, "run.toml")


@pytest.mark.parametrize(
    "space, message",
    [
        ('"training.algo" = ["adam", "nadamm"]',
         r'bad.toml \(training.algo = "nadamm"\): training.algo: .*\(closest: nadam'),
        ('"training.weight_l2" = {low = -0.1, high = 0.1}',
         r"training.weight_l2 = -0.1\): training.weight_l2: weight must be a number in \[0, inf\)"),
        ('"model.layers" = [[4, 8, 1], [4, "x", 1]]', r'model.layers = \[4, "x", 1\]\): model.layers'),
    ],
)  # fmt: skip
def test_every_corner_of_the_space_is_checked_before_compiling(folder, space, message):
    text = SWEEP.split("[sweep]")[0] + "[sweep]\n[sweep.space]\n" + space + "\n"
    (folder / "bad.toml").write_text(text)
    result = invoke("sweep", folder / "bad.toml", "--run-dir", folder / "runs" / "bad")
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert re.search(message, result.stderr), result.stderr
    assert not (folder / "runs" / "bad" / "trial-0").exists()


def test_a_sweep_directory_refuses_another_space(folder):
    sweep_dir = folder / "runs" / "s"
    text = SWEEP.replace("[1e-7, 0.05]", "[1e-7]").replace(", [4, 8, 1]]", "]")
    text = text.replace("max_updates = 30", "max_updates = 5")
    (folder / "a.toml").write_text(text)
    assert invoke("sweep", folder / "a.toml", "--trials", 1, "--run-dir", sweep_dir).exit_code == 0
    (folder / "b.toml").write_text(text.replace("[1e-7]", "[1e-6]"))
    result = invoke("sweep", folder / "b.toml", "--trials", 1, "--run-dir", sweep_dir)
    assert result.exit_code == 2
    assert "was started from another config or space" in result.stderr
    assert invoke("sweep", "--status", folder / "runs" / "nope").exit_code == 2
