"""Loggers: TensorBoard event files, the MLflow store, your own, and what resuming does.

The event files are read back with TensorBoard's own ``EventAccumulator``
(the ``tensorboard`` package, in the test extra), which purges as TensorBoard
shows a restarted run: a ``SessionLog.START`` event at step s hides the
events at steps >= s written before it. The MLflow file store is read with
``MlflowClient``.
"""

import csv
import json

# test dependencies, imported plainly so that a missing one fails instead of skipping
import mlflow.tracking  # noqa: F401
import numpy as np
import pytest
import tensorboard  # noqa: F401
import tensorboardX  # noqa: F401

import trainkit
from trainkit.training import loggers
from trainkit.training.options import parse
from trainkit.training.parallel import quiet_options

OPTIONS = dict(
    algo="adam",
    learning_rate=0.02,
    batch_size=8,
    shuffle=True,
    seed=3,
    hidden_dropout=0.3,
    validate_every=2,
    monitor_gradients=True,
    progress=False,
    log=False,
)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    return [x, (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")]


def read_events(folder):
    """``{tag: {step: value}}`` of the scalars in ``folder``'s event files, as TensorBoard's
    own ``EventAccumulator`` reads them (orphaned steps purged after a restart)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    accumulator.Reload()
    return {
        tag: {event.step: event.value for event in accumulator.Scalars(tag)}
        for tag in accumulator.Tags()["scalars"]
    }


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def client(run_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())


def run_id(run_dir):
    return json.loads((run_dir / "mlflow-run.json").read_text())["run_id"]


class Recorder:
    """A user's logger: records every call."""

    def __init__(self):
        self.calls = []

    def log_params(self, params):
        self.calls.append(("params", params))

    def log_metrics(self, step, metrics):
        self.calls.append(("metrics", step, dict(metrics)))

    def close(self):
        self.calls.append(("close",))


@pytest.fixture(autouse=True)
def no_tracking_server(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # what the logger sets for itself


def train(run_dir, max_updates=6, **kwargs):
    net = trainkit.Regressor([3, (4, "tanh"), 2])
    options = dict(OPTIONS, run_dir=run_dir, max_updates=max_updates)
    options.update(kwargs)
    pairs = list(net.itertrain(data(), **options))
    return net, pairs


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run logging everywhere."""
    run_dir = tmp_path_factory.mktemp("reference")
    recorder = Recorder()
    net, pairs = train(run_dir, loggers=["csv", "tensorboard", "mlflow", recorder])
    net.save(run_dir / "model.npz")
    loggers.log_artifacts(net.trainer, [run_dir / "model.npz"])
    return run_dir, pairs, recorder, net


def test_tensorboard_holds_one_scalar_per_metric_at_each_validation_step(reference):
    run_dir, pairs, _, _ = reference
    scalars = read_events(run_dir / "tensorboard")
    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    for column in rows[0]:
        if column == "step":
            continue
        assert sorted(scalars[column]) == [2, 4, 6], column
        for row in rows:
            assert scalars[column][int(row["step"])] == pytest.approx(float(row[column]), rel=1e-6)
    assert {"train_loss", "valid_loss", "lr", "epoch", "train_grad_norm"} <= set(scalars)
    tm, vm = pairs[-1]
    assert scalars["valid_loss"][6] == pytest.approx(vm["loss"], rel=1e-6)
    assert scalars["train_grad_norm"][6] == pytest.approx(tm["grad_norm"], rel=1e-6)


def test_mlflow_holds_params_metrics_and_artifacts(reference):
    run_dir, pairs, _, _ = reference
    mlflow = client(run_dir)
    run = mlflow.get_run(run_id(run_dir))
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    params = run.data.params
    assert params["model"] == "Regressor"
    assert params["algo"] == "adam" and float(params["learning_rate"]) == 0.02
    assert params["batch_size"] == "8" and params["max_updates"] == "6"
    assert "hidden_dropout" in params and params["dtype"] == "float32"
    layers = json.loads(params["layers"])  # the resolved layer list
    assert [(layer["size"], layer.get("activation")) for layer in layers] == [
        (3, None),
        (4, "tanh"),
        (2, "linear"),
    ]
    for key, metric in (("valid_loss", "loss"), ("valid_mse", "mse")):
        history = mlflow.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [2, 4, 6]
        assert [m.value for m in history] == pytest.approx([vm[metric] for _, vm in pairs])
    lr = mlflow.get_metric_history(run.info.run_id, "lr")
    assert [m.value for m in lr] == pytest.approx([0.02] * 3)
    assert [a.path for a in mlflow.list_artifacts(run.info.run_id)] == ["model.npz"]


def test_a_users_logger_gets_params_metrics_and_close(reference):
    _, pairs, recorder, _ = reference
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["params", "metrics", "metrics", "metrics", "close"]
    params = recorder.calls[0][1]
    assert params["model"] == "Regressor" and params["algo"] == "adam"
    assert params["loggers"] == '["csv", "tensorboard", "mlflow", "Recorder"]'
    for call, (tm, vm) in zip(recorder.calls[1:4], pairs, strict=True):
        _, step, metrics = call
        assert step == tm["step"]
        assert metrics["valid_loss"] == vm["loss"] and metrics["train_loss"] == tm["loss"]
        assert metrics["lr"] == tm["lr"] and "step" not in metrics


def test_resuming_continues_the_event_files_and_the_mlflow_run_without_duplicates(
    reference, tmp_path
):
    ref_dir, ref_pairs, _, ref_net = reference
    checkpoint = tmp_path / "checkpoint.npz"
    kinds = ["csv", "tensorboard", "mlflow"]
    # 3 updates: validations at 2 and (the extra one at the end) 3
    train(tmp_path, max_updates=3, loggers=kinds, save_progress=checkpoint)
    first = run_id(tmp_path)
    net, pairs = train(tmp_path, loggers=kinds, save_progress=checkpoint, resume=checkpoint)
    for name, p in ref_net.params.items():
        assert np.array_equal(net.params[name].get_value(), p.get_value()), name
    scalars = read_events(tmp_path / "tensorboard")
    expected = read_events(ref_dir / "tensorboard")
    assert set(scalars) == set(expected)
    for tag in expected:
        assert sorted(scalars[tag]) == [2, 4, 6], tag
        if tag != "seconds":
            assert scalars[tag] == expected[tag], tag
    assert run_id(tmp_path) == first
    mlflow = client(tmp_path)
    history = mlflow.get_metric_history(first, "valid_loss")
    steps = [m.step for m in history]
    assert len(steps) == len(set(steps)) and {2, 4, 6} <= set(steps)
    by_step = {m.step: m.value for m in history}
    assert [by_step[s] for s in (2, 4, 6)] == pytest.approx([vm["loss"] for _, vm in ref_pairs])
    assert mlflow.get_run(first).info.status == "FINISHED"
    assert len(mlflow.search_runs([mlflow.get_run(first).info.experiment_id])) == 1


def test_a_fresh_run_in_the_same_directory_starts_new_logs(tmp_path):
    train(tmp_path, max_updates=2, loggers=["tensorboard", "mlflow"])
    first = run_id(tmp_path)
    train(tmp_path, max_updates=2, loggers=["tensorboard", "mlflow"])
    assert run_id(tmp_path) != first
    assert sorted(read_events(tmp_path / "tensorboard")["valid_loss"]) == [2]
    assert not (tmp_path / "metrics.csv").exists()  # no 'csv' named: no metrics file


def test_the_default_is_the_metrics_format_file(tmp_path):
    assert parse({}).loggers == ["csv"]
    assert parse({"metrics_format": "jsonl"}).loggers == ["jsonl"]
    assert parse({"loggers": "tensorboard", "run_dir": tmp_path}).loggers == ["tensorboard"]


def test_bad_loggers_are_one_line_before_compiling(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"loggers: unknown logger 'tensorbord'.*closest: tensorb"):
        parse({"loggers": ["tensorbord"], "run_dir": tmp_path})
    with pytest.raises(ValueError, match=r"loggers: 'mlflow' writes into the run directory; set"):
        parse({"loggers": ["mlflow"]})
    with pytest.raises(ValueError, match=r"loggers: item 0: a logger is one of csv, .* got 3"):
        parse({"loggers": [3], "run_dir": tmp_path})
    with pytest.raises(ValueError, match=r"loggers: 'csv' is named twice"):
        parse({"loggers": ["csv", "csv"], "run_dir": tmp_path})
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(
        loggers.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tensorboardX", "mlflow") else real(name, *a),
    )
    for name in ("tensorboard", "mlflow"):
        with pytest.raises(
            ValueError,
            match=rf"loggers: '{name}' needs \w+, which is not installed; install the extra: "
            rf"pip install 'trainkit\[{name}\]'",
        ):
            trainkit.Regressor([3, 2]).train(data(), loggers=[name], run_dir=tmp_path)


def test_mlflow_without_run_dir_goes_to_the_tracking_uri(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    net = trainkit.Regressor([3, 2])
    net.train(data(), algo="sgd", max_updates=2, loggers=["mlflow"], progress=False, log=False)
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=store.as_uri())
    (run,) = mlflow.search_runs([mlflow.get_experiment_by_name("trainkit").experiment_id])
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "valid_loss")] == [2]


def test_only_rank_0_logs(tmp_path):
    options = parse({"loggers": [Recorder(), "tensorboard"], "run_dir": tmp_path})
    assert len(loggers.LoggerHook(options).loggers) == 2
    assert loggers.LoggerHook(quiet_options(options)).loggers == []


def test_the_command_line_keeps_metrics_csv_and_adds_logger_flags(tmp_path):
    from test_cli import CLASSIFIER, invoke, write_data

    write_data(tmp_path)
    text = CLASSIFIER.replace("[training]\n", '[training]\nloggers = ["tensorboard"]\n')
    (tmp_path / "run.toml").write_text(text)
    run_dir = tmp_path / "run"
    result = invoke("train", tmp_path / "run.toml", "--run-dir", run_dir, "--logger", "mlflow")
    assert result.exit_code == 0, result.output
    assert 'loggers = ["tensorboard", "mlflow"]' in (run_dir / "config.toml").read_text()
    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert sorted(read_events(run_dir / "tensorboard")["valid_loss"]) == [4, 8, 12]
    mlflow = client(run_dir)
    artifacts = [a.path for a in mlflow.list_artifacts(run_id(run_dir))]
    assert artifacts == ["curves.png", "model.npz"]
    result = invoke("train", tmp_path / "run.toml", "--logger", "tensorbord")
    assert result.exit_code == 2
    assert "--logger: unknown logger 'tensorbord'" in result.output + getattr(result, "stderr", "")
    assert "(closest: tensorboard)" in result.output + getattr(result, "stderr", "")
