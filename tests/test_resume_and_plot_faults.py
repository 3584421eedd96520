"""Python ``resume=`` with other penalties or monitors, and ``trainkit plot`` on a
malformed metrics file: one line naming what differs / the file (issue 15)."""

import re

import numpy as np
import pytest
from test_cli import invoke

import trainkit
from trainkit import archive


@pytest.fixture
def checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    data = [x, x.sum(1, keepdims=True)]
    net = trainkit.Regressor([3, 4, 1])
    # ends between validations, so the checkpoint's window of training metrics is not empty
    net.train(
        data,
        max_updates=3,
        validate_every=2,
        progress=False,
        log=False,
        save_progress=str(tmp_path / "ck.npz"),
    )
    return tmp_path / "ck.npz", data


@pytest.mark.parametrize(
    "extra, message",
    [
        (dict(weight_l2=0.1), r"this run adds weight_l2;"),
        (dict(monitor_gradients=True), r"this run adds grad_norm \(monitor_gradients\)"),
    ],
)
def test_resume_with_other_training_metrics_names_what_differs(checkpoint, extra, message):
    path, data = checkpoint
    net = trainkit.Regressor([3, 4, 1])
    with pytest.raises(
        ValueError, match=rf"^resume: .*ck.npz was made with other training metrics: {message}"
    ):
        net.train(
            data, max_updates=6, validate_every=2, progress=False, log=False, resume=path, **extra
        )


def test_resume_without_a_penalty_the_checkpoint_had(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    data = [x, x.sum(1, keepdims=True)]
    kwargs = dict(validate_every=2, progress=False, log=False)
    trainkit.Regressor([3, 4, 1]).train(
        data, max_updates=3, weight_l1=0.1, save_progress=str(tmp_path / "ck.npz"), **kwargs
    )
    with pytest.raises(ValueError, match=r"this run lacks weight_l1;"):
        trainkit.Regressor([3, 4, 1]).train(
            data, max_updates=6, resume=tmp_path / "ck.npz", **kwargs
        )


def test_a_checkpoint_without_columns_is_checked_by_its_window(checkpoint):
    path, data = checkpoint
    arrays, meta = archive.load(path)
    del meta["columns"]  # as written before the columns were recorded
    archive.save(path, arrays, meta)
    with pytest.raises(
        ValueError,
        match=r"was made with 2 training metrics, this run has 3 \(loss, base, weight_l2\)",
    ):
        trainkit.Regressor([3, 4, 1]).train(
            data,
            max_updates=6,
            validate_every=2,
            progress=False,
            log=False,
            resume=path,
            weight_l2=0.1,
        )


def test_resume_with_the_same_terms_still_works(checkpoint):
    path, data = checkpoint
    net = trainkit.Regressor([3, 4, 1])
    net.train(data, max_updates=6, validate_every=2, progress=False, log=False, resume=path)
    assert net.trainer.step == 6


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "metrics.csv",
            "step,train_loss,valid_loss\n1,2,3\n2,2,3,4\n",
            r"metrics.csv: line 3: 4 fields, the header has 3",
        ),
        (
            "metrics.csv",
            "step,train_loss,valid_loss\n1,2\n",
            r"metrics.csv: line 2: 2 fields, the header has 3",
        ),
        ("metrics.csv", b"\xff\xfe\x00garbage", r"metrics.csv: not UTF-8 text"),
        (
            "metrics.csv",
            "step,valid_loss\n1,2\n",
            r"metrics.csv: no train_loss and valid_loss columns",
        ),
        (
            "metrics.jsonl",
            '{"step": 1, "train_loss": 2, "valid_loss": 3}\n[1]\n',
            r"metrics.jsonl: line 2: not a JSON object",
        ),
        ("metrics.jsonl", "garbage\n", r"metrics.jsonl: line 1: not JSON"),
    ],
)
def test_plot_of_a_malformed_metrics_file_is_one_line_naming_it(tmp_path, name, content, message):
    (tmp_path / "run").mkdir()
    target = tmp_path / "run" / name
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = invoke("plot", tmp_path / "run")
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {target}")
    assert re.search(message, lines[0]), lines[0]


def test_a_directory_as_checkpoint_file_is_refused_before_training(tmp_path):
    x = np.zeros((8, 3), "float32")
    kwargs = dict(max_updates=1, progress=False, log=False)
    with pytest.raises(ValueError, match=r"save_progress: .* is a directory; give the checkpoint"):
        trainkit.Regressor([3, 1]).train([x, x[:, :1]], save_progress=tmp_path, **kwargs)
    with pytest.raises(OSError, match=r"^resume: .*: a directory, not a checkpoint file$"):
        trainkit.Regressor([3, 1]).train([x, x[:, :1]], resume=tmp_path, **kwargs)
