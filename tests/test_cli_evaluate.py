"""``trainkit evaluate``, ``evaluate_arrays``, and predicting from an interrupted run's checkpoint."""

import json

import numpy as np
import pytest
from test_cli import folder, invoke, one_line_error, run  # noqa: F401 (fixtures)

import trainkit
from trainkit import archive
from trainkit.models.metrics import evaluate_arrays


def test_evaluate_arrays_regressor_matches_numpy_formulas():
    rng = np.random.default_rng(0)
    net = trainkit.Regressor([3, 4, 2], seed=2)
    x = rng.normal(size=(30, 3)).astype("float32")
    y = rng.normal(size=(30, 2)).astype("float32")
    w = rng.uniform(0.1, 2.0, size=30).astype("float32")
    out = net.predict(x).astype(np.float64)
    err = out - y
    mse = (w * (err**2).mean(1)).sum() / w.sum()
    mae = (w * np.abs(err).mean(1)).sum() / w.sum()
    mean = (w[:, None] * y).sum(0) / w.sum()
    r2 = np.mean(1 - (w[:, None] * err**2).sum(0) / (w[:, None] * (y - mean) ** 2).sum(0))
    got = evaluate_arrays(net, x, y, w, batch_size=7)
    assert list(got) == ["loss", "mse", "mae", "r2"]
    np.testing.assert_allclose(
        [got["loss"], got["mse"], got["mae"], got["r2"]], [mse, mse, mae, r2], rtol=1e-6
    )
    assert got["r2"] == pytest.approx(net.score(x, y, w), rel=1e-6)


def test_evaluate_arrays_classifier_matches_numpy_formulas():
    rng = np.random.default_rng(1)
    net = trainkit.Classifier([3, 5, 4])
    x = rng.normal(size=(25, 3)).astype("float32")
    labels = rng.integers(0, 4, size=25)
    p = net.predict_proba(x).astype(np.float64)
    got = evaluate_arrays(net, x, labels)
    assert got["loss"] == pytest.approx(-np.log(p[np.arange(25), labels]).mean(), rel=1e-6)
    assert got["acc"] == pytest.approx((p.argmax(1) == labels).mean())
    with pytest.raises(ValueError, match=r"^evaluate: .*labels"):
        evaluate_arrays(net, x, labels + 4)


def test_evaluate_prints_one_line_per_metric_and_json(folder, run):  # noqa: F811
    net = trainkit.load(run / "model.npz")
    data = np.load(folder / "train.npz")
    x, labels = data["inputs"], data["labels"]
    args = [
        "evaluate",
        run / "model.npz",
        folder / "train.npz",
        "--array",
        "inputs",
        "--y",
        "labels",
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["loss", "acc"]
    metrics = json.loads(invoke(*args, "--json").stdout)
    assert metrics["acc"] == pytest.approx(net.score(x, labels))
    assert float(lines[1].split()[1]) == pytest.approx(metrics["acc"], rel=1e-5)
    assert metrics == pytest.approx(evaluate_arrays(net, x, labels))


def test_evaluate_errors_are_one_line(folder, run):  # noqa: F811
    message = one_line_error(invoke("evaluate", run, folder / "train.npz"))
    assert "train.npz: no array 'x'; the file holds inputs, labels" in message
    message = one_line_error(invoke("evaluate", run, folder / "train.csv"))
    assert message.startswith("--y: name the target column(s) of")


def test_predict_and_evaluate_from_an_interrupted_runs_checkpoint(folder, run):  # noqa: F811
    x = np.load(folder / "x.npy")
    expected = trainkit.load(run / "model.npz").predict_proba(x)
    (run / "model.npz").unlink()  # as if the run had been interrupted
    result = invoke(
        "predict", run / "checkpoint.npz", folder / "x.npy", "--proba", "-o", folder / "p.npy"
    )
    assert result.exit_code == 0, result.output
    assert "using the best validated parameters (update" in result.stderr
    np.testing.assert_allclose(np.load(folder / "p.npy"), expected, rtol=1e-6)
    result = invoke("evaluate", run, folder / "train.npz", "--array", "inputs", "--y", "labels")
    assert result.exit_code == 0 and "acc" in result.stdout, result.output
    # without best parameters, the current ones, and the note says so
    arrays, meta = archive.load(run / "checkpoint.npz")
    arrays = {k: v for k, v in arrays.items() if not k.startswith("best/")}
    archive.save(run / "checkpoint.npz", arrays, meta)
    result = invoke("predict", run, folder / "x.npy", "-o", folder / "l.npy")
    assert result.exit_code == 0, result.output
    assert f"using the parameters at update {meta['step']} (none validated yet)" in result.stderr


def test_a_checkpoint_without_its_config_is_one_line(folder, run):  # noqa: F811
    (run / "config.toml").rename(folder / "elsewhere.toml")
    message = one_line_error(
        invoke("predict", run / "checkpoint.npz", folder / "x.npy", "-o", "o.npy")
    )
    assert "checkpoint.npz: a checkpoint holds parameters but not the layers" in message
