"""Layer entries in the command line's TOML: accepted, checked with the file and key named."""

import re

import pytest

from tests.test_cli import invoke, one_line_error

DIGITS_CONV = """\
[model]
kind = "Classifier"
layers = [{shape = [8, 8, 1]},
          {form = "conv2d", size = 4, kernel = 3, padding = "same"},
          {form = "maxpool2d", pool = 2},
          {form = "flatten"},
          10]

[data]
builtin = "digits"

[training]
algo = "adam"
batch_size = 64
max_updates = 3
validate_every = 3
"""

SEQUENCE_CONV = DIGITS_CONV.replace(
    """layers = [{shape = [8, 8, 1]},
          {form = "conv2d", size = 4, kernel = 3, padding = "same"},
          {form = "maxpool2d", pool = 2},
          {form = "flatten"},
          10]""",
    """layers = [8, {form = "conv1d", size = 8, kernel = 3}, {form = "globalavgpool"}, 10]""",
)


@pytest.mark.parametrize("text", [DIGITS_CONV, SEQUENCE_CONV], ids=["conv2d", "conv1d"])
def test_convolutional_configs_train_on_the_builtin_digits(tmp_path, text):
    (tmp_path / "run.toml").write_text(text)
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model.npz").exists()


@pytest.mark.parametrize(
    "layers, message",
    [
        (
            '[8, {form = "conv1d", size = 8, kernal = 3}, 10]',
            r"run.toml: model.layers\[1\]: unknown key 'kernal'; a conv1d layer takes .*"
            r"\(closest: kernel\)$",
        ),
        (
            '[8, {form = "conv1d", size = 8, kernel = 9}, {form = "globalmaxpool"}, 10]',
            r"layers\[1\]: conv1d layer 'hid1': kernel 9 is longer than the 8 time step",
        ),
        (
            '[{vocab = 10}, {form = "lstm", size = 3}, 10]',
            r"run.toml: model.layers\[1\]: lstm layer 'hid1' cannot read token ids",
        ),
    ],
)
def test_bad_layer_tables_are_one_line_naming_file_and_entry(tmp_path, layers, message):
    text = re.sub(r"layers = \[.*?10\]", f"layers = {layers}", DIGITS_CONV, flags=re.S)
    (tmp_path / "run.toml").write_text(text)
    line = one_line_error(invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "r"))
    assert re.search(message, line), line


def test_a_model_too_large_for_memory_is_one_line(tmp_path):
    (tmp_path / "run.toml").write_text(DIGITS_CONV)
    line = one_line_error(
        invoke("train", tmp_path / "run.toml", "--set", "model.layers=[4,1000000000,2]")
    )
    assert re.match(r"--set model.layers: the parameters would take [\d.]+ GB", line), line
