"""Messages that name the right thing (issue 15's "unclear" cases).

Values from ``--set`` are blamed on ``--set``, model keys on themselves, a
byte-order mark is accepted, an unknown ``--mode`` is one line, damaged
checkpoint headers and model files name the file (never ``PosixPath``), a
dropout that cannot reach the loss says which output the loss reads, the
"compiling" line comes only after the data checks, and a ragged CSV file is
refused naming the file and line.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from test_cli import CLASSIFIER, invoke, write_data

import trainkit
from trainkit import archive


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, lines
    assert "PosixPath" not in lines[0] and "ConfigParam" not in lines[0]
    return lines[0]


@pytest.fixture
def folder(tmp_path):
    write_data(tmp_path)
    (tmp_path / "run.toml").write_text(CLASSIFIER)
    return tmp_path


def train(folder, *args, config="run.toml"):
    return invoke("train", folder / config, "--run-dir", folder / "run", *args)


# -- --set and model keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.seed=-1", "error: --set model.seed: must be a non-negative integer, got -1"),
        (
            "model.hidden_activation=bogus",
            "error: --set model.hidden_activation: unknown activation 'bogus'; choose from ",
        ),
        ("model.loss=bogus", "error: --set model.loss: unknown loss 'bogus'; choose from "),
        ("model.dtype=float16", "error: --set model.dtype: unknown dtype 'float16'; choose from "),
        (
            'model.layers=[4, {size = 8, form = "bogus"}, 3]',
            "error: --set model.layers[1]: form: unknown form 'bogus'",
        ),
        ("training.mode=bogus", "error: --set training.mode: unknown mode 'bogus'; choose from "),
    ],
)
def test_values_from_set_are_blamed_on_set(folder, override, expected):
    assert one_line(train(folder, "--set", override)).startswith(expected)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("seed = -1", "model.seed: must be a non-negative integer, got -1"),
        ('hidden_activation = "bogus"', "model.hidden_activation: unknown activation 'bogus'"),
    ],
)
def test_model_keys_in_the_file_are_reported_as_themselves(folder, line, expected):
    text = CLASSIFIER.replace("seed = 1", line)
    (folder / "run.toml").write_text(text)
    assert one_line(train(folder)).startswith(f"error: {folder / 'run.toml'}: {expected}")


def test_a_section_changed_by_set_says_so(folder):
    # recurrent_norm is in the file; the change that breaks it came from --set
    text = CLASSIFIER.replace("max_norm = 3", "max_norm = 3\nrecurrent_norm = 0.1")
    (folder / "run.toml").write_text(text)
    line = one_line(train(folder, "--set", "model.layers=[4, 3]"))
    assert line.startswith(f"error: {folder / 'run.toml'} (with --set model.layers): training")


def test_a_toml_file_with_a_byte_order_mark_is_read(folder):
    (folder / "run.toml").write_bytes(b"\xef\xbb\xbf" + CLASSIFIER.encode())
    result = train(folder)
    assert result.exit_code == 0, result.output


def test_an_unknown_mode_is_one_line(folder):
    assert train(folder).exit_code == 0
    result = invoke(
        "predict", folder / "run", folder / "x.npy", "-o", folder / "o.npy", "--mode", "BOGUS"
    )
    line = one_line(result)
    assert line.startswith("error: --mode: unknown mode 'BOGUS'; choose from ")
    assert "JAX" in line and "Failed to change flags" not in result.output


# -- files ------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    data = [x, x.sum(1, keepdims=True)]
    trainkit.Regressor([3, 1]).train(
        data, max_updates=3, progress=False, log=False, save_progress=str(tmp_path / "ck.npz")
    )
    return tmp_path / "ck.npz", data


@pytest.mark.parametrize(
    "change",
    [
        lambda meta: meta.update(early_stopping="text"),
        lambda meta: meta.update(step=-5),
        lambda meta: meta.update(signature="text"),
        lambda meta: meta.pop("dataset"),
        lambda meta: meta.update(window=[1.0, "x"]),
        lambda meta: meta.update(schedule={"step": -1}),
    ],
    ids=["early_stopping", "step", "signature", "dataset", "window", "schedule"],
)
def test_a_crafted_checkpoint_header_names_the_file(checkpoint, change):
    path, data = checkpoint
    arrays, meta = archive.load(path)
    change(meta)
    archive.save(path, arrays, meta)
    net = trainkit.Regressor([3, 1])
    with pytest.raises(ValueError, match=rf"^resume: {re.escape(str(path))}") as raised:
        net.train(
            data,
            max_updates=6,
            progress=False,
            log=False,
            resume=Path(path),
            lr_schedule="constant",
        )
    assert "\n" not in str(raised.value) and "PosixPath" not in str(raised.value)


def test_no_posixpath_in_messages(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for call in (
        lambda: trainkit.load(bad),
        lambda: archive.load(bad),
        lambda: archive.read_meta(bad),
    ):
        with pytest.raises(ValueError) as raised:
            call()
        assert "PosixPath" not in str(raised.value)
        assert str(raised.value).startswith(f"{bad}: not a valid trainkit ")


def test_a_model_file_is_not_called_a_checkpoint(tmp_path):
    bad = tmp_path / "model.npz"
    np.save(tmp_path / "x.npy", np.zeros(3))
    bad.write_bytes((tmp_path / "x.npy").read_bytes())
    with pytest.raises(ValueError, match=r"not a valid trainkit model file:"):
        trainkit.load(bad)
    with pytest.raises(ValueError, match=r"not a valid trainkit model file or checkpoint:"):
        archive.read_meta(bad)


# -- training -------------------------------------------------------------------------


def test_dropout_on_a_bidirectional_lstm_that_passes_its_last_step(rng):
    net = trainkit.Classifier(
        [3, {"size": 4, "form": "lstm", "bidirectional": True, "return_sequences": False}, 2]
    )
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    y = rng.integers(0, 2, size=8)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "hidden_dropout: its noise on hid1:out does not reach the loss, so it would change "
            "nothing; the loss reads hid1:last instead (the layer has return_sequences=false: "
            "the next layer reads its last step); select that, e.g. "
            "hidden_dropout={'weight': 0.1, 'pattern': 'hid1:last'}"
        ),
    ):
        net.train([x, y], hidden_dropout=0.1, max_updates=1, progress=False, log=False)
    # the suggestion works
    net.train(
        [x, y],
        hidden_dropout={"weight": 0.1, "pattern": "hid1:last"},
        max_updates=1,
        progress=False,
        log=False,
    )


def test_compiling_is_announced_only_after_the_data_checks(folder):
    x = np.zeros((64, 4), "float32")
    x[3, 1] = np.nan
    np.savez(folder / "train.npz", inputs=x, labels=np.zeros(64, "int64"))
    result = train(folder)
    assert result.exit_code == 2
    assert "contains NaN" in result.stderr
    assert "compiling with mode" not in result.stdout


# -- CSV ------------------------------------------------------------------------------

REGRESSION = """\
[model]
kind = "Regressor"
layers = [2, 1]

[data]
train = "t.csv"
y = "c"

[training]
max_updates = 2
"""


@pytest.mark.parametrize(
    "rows, line, fields",
    [
        ("1,2,3\n4,5,6,7\n", 3, 4),  # an extra field at the end
        ("1,2,3\n4,5\n", 3, 2),  # a missing field
        ("1,2,3\n4,9,5,6\n", 3, 4),  # a field inserted mid-row
        ("1,2,3\n4,5,6\n\n7,8\n", 5, 2),  # a blank line counts as a line
    ],
)
def test_a_ragged_csv_is_refused_naming_the_file_and_line(folder, rows, line, fields):
    (folder / "t.csv").write_text("a,b,c\n" + rows)
    (folder / "reg.toml").write_text(REGRESSION)
    message = one_line(train(folder, config="reg.toml"))
    assert f"{folder / 't.csv'}: line {line}: {fields} fields, the header has 3" in message
