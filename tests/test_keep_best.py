"""``keep_best=k``: the k best validated models as ``best-<step>.npz``, equal to those models."""

import numpy as np
import pytest
from helpers import QUIET

import trainkit
from trainkit import archive

OPTIONS = dict(
    algo="sgd",
    learning_rate=0.3,
    batch_size=8,
    shuffle=True,
    seed=2,
    validate_every=1,
    patience=None,
    **QUIET,
)


def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 3)).astype("float32")
    return [x, (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")]


class Snapshots:
    """The validated parameters (the averages with ema) and loss at every validation."""

    def __init__(self):
        self.at = {}

    def on_validation(self, trainer, train_metrics, valid_metrics):
        source = trainer.ema.variables if trainer.ema is not None else trainer.graph.params
        params = {name: np.array(var.get_value()) for name, var in source.items()}
        self.at[trainer.step] = (valid_metrics["loss"], params)


def train(run_dir, max_updates=10, **kwargs):
    net = trainkit.Regressor([3, (5, "tanh"), 2])
    snapshots = Snapshots()
    net.train(
        data(),
        run_dir=run_dir,
        max_updates=max_updates,
        callbacks=[snapshots],
        **dict(OPTIONS, **kwargs),
    )
    return net, snapshots


def best_files(run_dir):
    return sorted(int(p.stem.split("-")[1]) for p in run_dir.glob("best-*.npz"))


def expected_best(snapshots, k):
    return sorted(sorted((loss, step) for step, (loss, _) in snapshots.at.items())[:k])


@pytest.mark.parametrize("ema", [None, 0.7])
def test_the_files_are_the_models_of_the_k_best_validations(tmp_path, ema):
    _, snapshots = train(tmp_path, keep_best=3, ema=ema)
    best = expected_best(snapshots, 3)
    assert best_files(tmp_path) == sorted(step for _, step in best)
    for loss, step in best:
        model = trainkit.load(tmp_path / f"best-{step}.npz")
        for name, value in snapshots.at[step][1].items():
            assert np.array_equal(model.params[name].get_value(), value), (step, name)
        meta = archive.load(tmp_path / f"best-{step}.npz")[1]
        assert meta["validation"] == {"step": step, "loss": loss}
    assert not list(tmp_path.glob("*.tmp*"))


def test_resuming_keeps_the_files_an_uninterrupted_run_keeps(tmp_path):
    reference = tmp_path / "reference"
    train(reference, keep_best=2, validate_every=2)
    run_dir = tmp_path / "run"
    checkpoint = run_dir / "checkpoint.npz"
    run_dir.mkdir()
    # 5 updates: validations at 2, 4 and the extra one at 5, made after the checkpoint's
    train(run_dir, 5, keep_best=2, validate_every=2, save_progress=checkpoint)
    assert 5 in best_files(run_dir)  # which the resumed run removes
    train(run_dir, keep_best=2, validate_every=2, save_progress=checkpoint, resume=checkpoint)
    assert best_files(run_dir) == best_files(reference)
    for step in best_files(reference):
        a = archive.load(run_dir / f"best-{step}.npz")[0]
        b = archive.load(reference / f"best-{step}.npz")[0]
        assert all(np.array_equal(a[n], b[n]) for n in b)
    # a fresh run in the same directory starts over
    train(run_dir, 2, keep_best=1, validate_every=2)
    assert best_files(run_dir) == [2]


def test_keep_best_needs_a_run_directory_and_a_positive_count(tmp_path):
    net = trainkit.Regressor([3, 2])
    with pytest.raises(ValueError, match=r"keep_best: writes best-<step>.npz into the run dir"):
        net.train(data(), keep_best=2)
    with pytest.raises(ValueError, match=r"keep_best: must be a positive int or None, got 0"):
        net.train(data(), keep_best=0, run_dir=tmp_path)


def test_evaluate_and_predict_take_a_best_file(tmp_path):
    from test_cli import CLASSIFIER, invoke, write_data

    write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER)
    run_dir = tmp_path / "run"
    result = invoke(
        "train", tmp_path / "run.toml", "--run-dir", run_dir, "--set", "training.keep_best=2"
    )
    assert result.exit_code == 0, result.output
    steps = best_files(run_dir)
    assert len(steps) == 2 and (run_dir / "model.npz").exists()
    best = run_dir / f"best-{steps[0]}.npz"
    args = [best, tmp_path / "train.npz", "--array", "inputs"]
    result = invoke("evaluate", *args, "--y", "labels", "--json")
    assert result.exit_code == 0, result.output
    result = invoke("predict", *args, "-o", tmp_path / "labels.npy")
    assert result.exit_code == 0, result.output
    net = trainkit.load(best)
    x = np.load(tmp_path / "train.npz")["inputs"]
    assert np.array_equal(np.load(tmp_path / "labels.npy"), net.predict(x))
