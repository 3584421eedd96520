"""The ``trainkit`` command line through click's test runner (in-process, test flags)."""

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import regularizers
import trainkit
from trainkit import optimizers
from trainkit.cli import commands as cli
from trainkit.cli import evaluate, files, plotting
from trainkit.training import options

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)

CLASSIFIER = """\
[model]
kind = "Classifier"
layers = [4, [8, "tanh"], 3]
seed = 1

[data]
train = "train.npz"
x = "inputs"
y = "labels"
valid_fraction = 0.25

[training]
algo = "adam"
learning_rate = 0.05
batch_size = 16
max_updates = 12
validate_every = 4
weight_l2 = 1e-4
hidden_dropout = {weight = 0.1, pattern = "hid1:out"}
max_norm = 3
max_gradient_norm = 5
"""

REGRESSOR = """\
[model]
kind = "Regressor"
layers = [3, {size = 5, form = "rnn", return_sequences = false}, 1]

[data]
train = "train.csv"
y = "target"
valid_fraction = 0.2

[training]
algo = "sgd"
learning_rate = 0.05
max_updates = 6
validate_every = 3
recurrent_norm = 0.1
"""


def write_data(folder, n=64, seed=0):
    """A small 3-class problem as train.npz, and a regression CSV with 6 columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1)
    np.savez(folder / "train.npz", inputs=x, labels=labels)
    np.save(folder / "x.npy", x)
    seq = rng.normal(size=(40, 6))
    with open(folder / "train.csv", "w") as f:
        f.write("t0a,t0b,t0c,t1a,t1b,t1c,target\n")
        for row in seq:
            f.write(",".join(f"{v:.5f}" for v in row) + f",{row.sum():.5f}\n")
    return x, labels


def runner():
    """A runner that keeps stderr apart (click < 8.2 needs mix_stderr=False for that)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def invoke(*args):
    return runner().invoke(cli.cli, [str(a) for a in args])


def check_png(path):
    """The file is a PNG that PIL reads, with both curves' colours drawn."""
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        size = image.size
    for colour in (TAB_BLUE, TAB_ORANGE):
        assert (pixels == colour).all(axis=1).sum() > 20, f"no {colour} line in {path}"
    return size


@pytest.fixture
def folder(tmp_path):
    write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER)
    (tmp_path / "reg.toml").write_text(REGRESSOR)
    return tmp_path


@pytest.fixture
def run(folder):
    """A finished tiny classifier run: its directory."""
    result = invoke("train", folder / "run.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.output
    return folder / "run"


# -- train ---------------------------------------------------------------------------


def test_train_writes_the_run_directory(folder, run):
    names = {p.name for p in run.iterdir()}
    assert names == {"config.toml", "metrics.csv", "checkpoint.npz", "model.npz", "curves.png"}
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["training"]["hidden_dropout"] == {"weight": 0.1, "pattern": "hid1:out"}
    assert saved["data"]["train"] == str(folder / "train.npz")  # absolute
    net = trainkit.load(run / "model.npz")
    assert isinstance(net, trainkit.Classifier) and net.n_in == 4
    _, rows = plotting.read_metrics(run)
    assert [r["step"] for r in rows] == [4, 8, 12]
    width, height = check_png(run / "curves.png")
    assert (width, height) == (1100, 400)  # two panels: loss and accuracy


def test_train_reports_held_out_accuracy_and_logs(folder):
    result = invoke("train", folder / "run.toml", "--run-dir", folder / "r")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "held-out accuracy" in out and "(16 examples)" in out
    assert "stopped after 12 updates: max_updates=12 reached" in out
    assert "step 4 epoch 1 lr 0.05" in result.stderr  # the trainer's log lines, no progress bar


def test_train_regressor_from_csv_reports_r2(folder):
    result = invoke("train", folder / "reg.toml", "--run-dir", folder / "r")
    assert result.exit_code == 0, result.output
    assert "held-out R²" in result.stdout and "(8 examples)" in result.stdout
    # six CSV columns read as 2 time steps of the model's 3 inputs
    assert "hid1 rnn(5)" in result.stdout


def test_set_overrides_and_default_run_directory(folder, monkeypatch):
    monkeypatch.chdir(folder)
    for expected in ("runs/run", "runs/run-2"):
        result = invoke("train", "run.toml", "--set", "training.max_updates=4")
        assert result.exit_code == 0, result.output
        assert f"run directory: {expected}" in result.stdout
    saved = tomllib.loads((folder / "runs" / "run-2" / "config.toml").read_text())
    assert saved["training"]["max_updates"] == 4


def test_builtin_digits_example_runs_briefly(tmp_path):
    result = invoke(
        "train",
        "--example",
        "digits",
        "--set",
        "training.max_updates=5",
        "--run-dir",
        tmp_path / "digits",
    )
    assert result.exit_code == 0, result.output
    assert "builtin digits (1797 examples), 359 held out" in result.stdout
    assert "held-out accuracy" in result.stdout and "(359 examples)" in result.stdout
    assert "Classifier in(8) -> hid1 rnn(32) -> out feedforward(10)" in result.stdout


# -- errors ----------------------------------------------------------------------------


def one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0][len("error: ") :]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--set", "training.weight_l22=1e-4"],
            r"^--set training.weight_l22: unknown keyword argument; .*\(closest: weight_l2, weight_l1\)$",
        ),
        (["--set", 'training.batch_size="32"'], r"training.batch_size: must be a positive int"),
        (["--set", "data.y=label"], r"data.y: .*train.npz: no array 'label'.*closest: labels"),
        (["--set", "data.train=nothing.npz"], r"data.train: .*nothing.npz: no such file"),
        (["--set", "model.layers=[5, 8, 3]"], r"data.train: array 0 \('x'\) has 4 features"),
        (
            ["--set", "training.max_norm={weight = 3, pattern = 'hid9.w'}"],
            r"training.max_norm: pattern 'hid9.w' matches no parameter",
        ),
    ],
)
def test_config_and_data_errors_are_one_line_with_status_2(folder, args, message):
    import re

    result = invoke("train", folder / "run.toml", "--run-dir", folder / "r", *args)
    assert re.search(message, one_line_error(result))
    assert not (folder / "r" / "model.npz").exists()


def test_error_in_the_file_names_the_file_and_key(folder):
    (folder / "bad.toml").write_text(CLASSIFIER.replace("weight_l2 =", "weight_l22 ="))
    message = one_line_error(invoke("train", folder / "bad.toml"))
    assert message == (
        f"{folder / 'bad.toml'}: training.weight_l22: unknown keyword argument; it is not a hyperparameter of "
        "adam, a regularizer or a trainer option (closest: weight_l2, weight_l1)"
    )
    (folder / "type.toml").write_text(CLASSIFIER.replace("batch_size = 16", 'batch_size = "16"'))
    assert one_line_error(invoke("train", folder / "type.toml")).endswith(
        "training.batch_size: must be a positive int, got '16'"
    )
    message = one_line_error(invoke("train", folder / "missing.toml"))
    assert message == f"{folder / 'missing.toml'}: no such config file"


def test_mismatched_lengths(folder):
    np.save(folder / "y.npy", np.zeros(10, "int64"))
    text = CLASSIFIER.replace('train = "train.npz"\nx = "inputs"\ny = "labels"\n', "")
    text = text.replace("[data]\n", '[data]\ntrain = {x = "x.npy", y = "y.npy"}\n')
    (folder / "npy.toml").write_text(text)
    message = one_line_error(invoke("train", folder / "npy.toml"))
    assert message.startswith(f"{folder / 'npy.toml'}: data.train: x = {folder / 'x.npy'}")
    assert message.endswith("arrays have different lengths: x 64, y 10")


def test_debug_shows_the_traceback(folder):
    result = invoke("train", folder / "run.toml", "--set", "training.weight_l22=1", "--debug")
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)
    result = invoke("--debug", "train", folder / "run.toml", "--set", "training.weight_l22=1")
    assert isinstance(result.exception, ValueError)


def test_run_directory_and_resume_checks(folder, run):
    message = one_line_error(invoke("train", folder / "run.toml", "--run-dir", run))
    assert "already holds a run" in message and "--resume" in message
    message = one_line_error(invoke("train", "--resume"))
    assert message == "--resume: name the run to continue with --run-dir DIR"
    message = one_line_error(invoke("train", "--resume", "--run-dir", folder / "none"))
    assert "checkpoint.npz: missing" in message or "config.toml: missing" in message
    changed = invoke(
        "train", folder / "run.toml", "--resume", "--run-dir", run, "--set", "model.seed=5"
    )
    assert one_line_error(changed).startswith("--resume: model.seed is 5 here but 1 in the run's")
    # a finished run resumed with a longer limit carries on from its checkpoint
    longer = invoke("train", "--resume", "--run-dir", run, "--set", "training.max_updates=16")
    assert longer.exit_code == 0, longer.output
    assert "stopped after 16 updates" in longer.stdout
    _, rows = plotting.read_metrics(run)
    assert [r["step"] for r in rows] == [4, 8, 12, 16]


# -- list, describe, explain ------------------------------------------------------------


def test_list_names_every_optimizer_regularizer_option_and_example():
    result = invoke("list")
    assert result.exit_code == 0
    out = result.stdout
    for name in [*optimizers.names(), *regularizers.names(), *options.OPTIONS]:
        assert name in out, name
    assert "weight_l2 (alias weight_decay)" in out
    assert "learning_rate=0.001 beta1=0.9 beta2=0.999 epsilon=1e-08" in out
    assert "batch_size = 32" in out and "examples per update" in out
    assert "digits" in out and "gru" in out
    only = invoke("list", "optimizers").stdout
    assert "adam" in only and "weight_l2" not in only


def test_help_points_at_the_first_run():
    result = invoke("--help")
    assert result.exit_code == 0 and "trainkit train --example digits" in result.stdout
    assert "--example NAME" in invoke("train", "--help").stdout


def test_describe_a_config_a_model_and_a_run(folder, run):
    text = invoke("describe", folder / "run.toml").stdout
    assert "hid1.w" in text and "4x8" in text and "hid1:out" in text and "hidden" in text
    info = json.loads(invoke("describe", run / "model.npz", "--json").stdout)
    assert [p["name"] for p in info["parameters"]] == ["hid1.w", "hid1.b", "out.w", "out.b"]
    assert info["parameters"][0]["shape"] == [4, 8]
    assert {o["name"]: o["tags"] for o in info["outputs"]}["hid1:out"] == ["hidden"]
    assert json.loads(invoke("describe", run, "--json").stdout) == info
    rec = json.loads(invoke("describe", "--example", "digits", "--json").stdout)
    tags = {o["name"]: (o["shape"], o["tags"]) for o in rec["outputs"]}
    assert tags["hid1:out"] == ("(batch, time, 32)", ["hidden", "recurrent"])
    assert tags["in:out"] == ("(batch, time, 8)", ["input"])
    assert one_line_error(invoke("describe", folder / "nope.npz")).endswith("no such file")


def test_explain_shows_targets_hooks_and_the_per_parameter_table(folder):
    result = invoke("explain", folder / "run.toml")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "nothing is compiled" in text
    assert "weight_l2 (weight 0.0001): penalty" in text
    assert "max_norm (weight 3): constraint" in text
    assert "hidden_dropout (weight 0.1): graph" in text
    info = json.loads(invoke("explain", folder / "run.toml", "--json").stdout)
    by_key = {e["key"]: e for e in info["regularizers"]}
    assert by_key["weight_l2"]["targets"] == ["hid1.w", "out.w"]
    assert by_key["max_gradient_norm"]["hooks"] == ["clip"]
    assert by_key["max_gradient_norm"]["targets"] == ["hid1.w", "hid1.b", "out.w", "out.b"]
    params = {p["name"]: p for p in info["parameters"]}
    assert params["hid1.w"]["penalty"] == ["weight_l2"]
    assert params["hid1.w"]["constraint"] == ["max_norm"]
    assert params["hid1.b"] == {
        "name": "hid1.b",
        "shape": [8],
        "penalty": [],
        "clip": ["max_gradient_norm"],
        "constraint": [],
    }
    assert info["outputs"] == [{"name": "hid1:out", "penalty": [], "graph": ["hidden_dropout"]}]
    digits = invoke("explain", "--example", "digits").stdout
    assert "recurrent_norm (weight 0.1, squared=false): penalty" in digits
    bad = invoke(
        "explain", folder / "run.toml", "--set", "training.hidden_l1={weight=1, pattern='x*'}"
    )
    assert "training.hidden_l1: pattern 'x*' matches no output" in one_line_error(bad)


# -- predict, plot -------------------------------------------------------------------------


def test_predict_labels_probabilities_and_csv_input(folder, run):
    result = invoke("predict", run / "model.npz", folder / "x.npy", "-o", folder / "labels.csv")
    assert result.exit_code == 0, result.output
    lines = (folder / "labels.csv").read_text().splitlines()
    assert lines[0] == "label" and len(lines) == 65
    net = trainkit.load(run / "model.npz")
    x = np.load(folder / "x.npy")
    assert [int(v) for v in lines[1:]] == net.predict(x).tolist()
    invoke(
        "predict", run, folder / "train.npz", "--array", "inputs", "--proba", "-o", folder / "p.npy"
    )
    np.testing.assert_allclose(np.load(folder / "p.npy"), net.predict_proba(x), rtol=1e-6)
    with open(folder / "in.csv", "w") as f:
        f.write("a,b,c,d,extra\n")
        for row in x[:5]:
            f.write(",".join(map(str, row)) + ",9\n")
    result = invoke(
        "predict",
        run,
        folder / "in.csv",
        "--columns",
        "a,b,c,d",
        "--batch-size",
        2,
        "-o",
        folder / "five.npy",
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(folder / "five.npy"), net.predict(x[:5]))


def test_predict_errors(folder, run):
    result = invoke("predict", run, folder / "train.npz", "-o", folder / "o.npy")
    assert "holds inputs, labels; choose the input array with --array NAME" in one_line_error(
        result
    )
    result = invoke("predict", run, folder / "x.npy", "-o", folder / "o.txt")
    assert "unknown output type '.txt'" in one_line_error(result)
    result = invoke("predict", folder / "x.npy", folder / "x.npy", "-o", folder / "o.npy")
    assert "x.npy: not a valid trainkit model file or checkpoint" in one_line_error(result)


def test_predict_uses_the_mode_of_the_run(folder, run):
    assert evaluate.run_mode(run / "model.npz") is None  # the config names no mode
    text = (run / "config.toml").read_text().replace("[model]\n", '[model]\nmode = "JAX"\n')
    (run / "config.toml").write_text(text)
    assert evaluate.run_mode(run / "model.npz") == evaluate.run_mode(run) == "JAX"
    assert evaluate.run_mode(folder / "x.npy") is None


def test_plot_redraws_curves_from_the_metrics(run):
    (run / "curves.png").unlink()
    result = invoke("plot", run, "-o", run / "again.png")
    assert result.exit_code == 0 and (run / "again.png").exists()
    figure, path = plotting.plot_run(run)
    assert path == str(run / "curves.png")
    loss, acc = figure.axes
    assert [line.get_label() for line in loss.lines] == ["training", "validation"]
    _, rows = plotting.read_metrics(run)
    np.testing.assert_allclose(loss.lines[1].get_ydata(), [r["valid_loss"] for r in rows])
    np.testing.assert_allclose(acc.lines[0].get_ydata(), [r["train_acc"] for r in rows])
    check_png(run / "again.png")
    assert "no metrics file" in one_line_error(invoke("plot", run.parent))


CONFIGS = sorted(
    [
        *(ROOT / "trainkit" / "examples").glob("*.toml"),
        *(ROOT / "scripts" / "configs").glob("*.toml"),
    ]
)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    """Each shipped config passes every check short of compiling."""
    result = invoke("explain", path)
    assert result.exit_code == 0, result.output
    assert "nothing is compiled" in result.stdout


def test_float64_data_without_a_validation_split(folder):
    """numpy's default dtypes train, and validate on the training data, cast."""
    rng = np.random.default_rng(3)
    np.savez(folder / "f64.npz", inputs=rng.normal(size=(32, 4)), labels=np.arange(32) % 3)
    text = CLASSIFIER.replace('train = "train.npz"', 'train = "f64.npz"').replace(
        "valid_fraction = 0.25\n", ""
    )
    (folder / "f64.toml").write_text(text)
    result = invoke("train", folder / "f64.toml", "--run-dir", folder / "f64")
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output or "accuracy" in result.output


def test_a_run_that_failed_before_its_first_checkpoint_can_be_run_again(folder):
    failed = folder / "failed"
    failed.mkdir()
    (failed / "config.toml").write_text(CLASSIFIER)  # what a failed start leaves
    result = invoke("train", folder / "run.toml", "--run-dir", failed)
    assert result.exit_code == 0, result.output
    assert (failed / "model.npz").exists()


# -- issue 9: runs that fail say so ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_a_diverged_run_exits_1_and_writes_no_model(tmp_path, policy):
    write_data(tmp_path)
    config = CLASSIFIER.replace("learning_rate = 0.05", "learning_rate = 1e30")
    config = config.replace("max_norm = 3\n", "").replace("max_gradient_norm = 5\n", "")
    (tmp_path / "run.toml").write_text(config + f'nan_policy = "{policy}"\npatience = "none"\n')
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 1, result.output
    assert "training diverged" in result.stderr and "no model.npz written" in result.stderr
    assert not (tmp_path / "run" / "model.npz").exists()
    assert (tmp_path / "run" / "checkpoint.npz").exists()


def test_lr_schedule_cosine_with_max_epochs_is_accepted_in_a_config(tmp_path):
    write_data(tmp_path)
    config = CLASSIFIER.replace("max_updates = 12", 'max_epochs = 2\nlr_schedule = "cosine"')
    (tmp_path / "run.toml").write_text(config)
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr


def test_a_mode_in_both_sections_must_agree(tmp_path):
    write_data(tmp_path)
    config = CLASSIFIER.replace("seed = 1", 'seed = 1\nmode = "FAST_COMPILE"')
    (tmp_path / "run.toml").write_text(config + 'mode = "JAX"\n')
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert "training.mode: 'JAX' disagrees with model.mode 'FAST_COMPILE'" in result.stderr


def test_threads_flag_limits_blas_for_the_command(tmp_path, monkeypatch):
    import threadpoolctl

    seen = []
    real = files.load

    def spy(*args, **kwargs):
        seen.extend(info["num_threads"] for info in threadpoolctl.threadpool_info())
        return real(*args, **kwargs)

    write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER)
    monkeypatch.setattr(files, "load", spy)
    result = invoke("--threads", 1, "train", tmp_path / "run.toml", "--run-dir", tmp_path / "r")
    assert result.exit_code == 0, result.stderr
    assert seen and set(seen) == {1}
    assert invoke("--threads", 0, "list").exit_code == 2


def test_a_config_trains_on_padded_sequences_with_lengths(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6, 2)).astype("float32")
    lengths = rng.integers(2, 7, size=48).astype("int32")
    y = np.stack([x[i, : lengths[i], 0].sum() for i in range(48)])[:, None].astype("float32")
    np.savez(tmp_path / "seq.npz", x=x, y=y, steps=lengths)
    (tmp_path / "run.toml").write_text(
        '[model]\nkind = "Regressor"\n'
        'layers = [{size = 2, lengths = true}, {size = 8, form = "gru", '
        "return_sequences = false}, 1]\n"
        '[data]\ntrain = "seq.npz"\nlengths = "steps"\nvalid_fraction = 0.25\n'
        '[training]\nalgo = "adam"\nlearning_rate = 0.01\nmax_updates = 6\n'
    )
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "model.npz").exists()
