"""Run configurations: reading, overrides, checks and their one-line messages."""

import tomllib

import pytest

from trainkit.cli import config
from trainkit.cli.config import load, load_text, parse_override
from trainkit.cli.errors import ConfigError
from trainkit.cli.shipped import examples
from trainkit.cli.toml import dumps

MODEL = '[model]\nkind = "Classifier"\nlayers = [4, {size = 3, form = "rnn"}, 2]\n'


def cfg(text, overrides=(), source="run.toml"):
    return load_text(text, source=source, overrides=overrides)


# -- reading and writing --------------------------------------------------------------


def test_sections_and_values_are_read_as_the_python_api_takes_them():
    c = cfg(
        MODEL
        + 'mode = "FAST_COMPILE"\n[training]\nalgo = "adam"\nnoise = {"hid1:out" = 0.1}\n'
        + 'patience = "none"\nbatch_size = 8\n'
    )
    assert c.kind == "Classifier" and c.algo == "adam" and c.mode == "FAST_COMPILE"
    assert c.model_kwargs()["layers"] == [4, {"size": 3, "form": "rnn"}, 2]
    assert c.training_kwargs() == {"noise": {"hid1:out": 0.1}, "patience": None, "batch_size": 8}


def test_a_two_element_layer_array_is_a_size_activation_tuple():
    c = cfg('[model]\nkind = "Regressor"\nlayers = [3, [5, "tanh"], 1]\n')
    assert c.model_kwargs()["layers"] == [3, (5, "tanh"), 1]
    assert c.network().layers[0].activation == "tanh"


def test_dumps_round_trips_through_tomllib():
    sections = {
        "model": {"kind": "Regressor", "layers": [3, {"size": 4, "form": "gru"}, 1], "seed": 2},
        "training": {
            "learning_rate": 1e-05,
            "weight_l2": 0.5,
            "hidden_dropout": {"weight": 0.2, "pattern": ["hid1:out", 'a"b']},
            "restore_best": False,
            "max_updates": None,
            "big": float("inf"),
        },
    }
    back = tomllib.loads(dumps(sections, comments=["header"]))
    sections["training"]["max_updates"] = "none"
    assert back == sections


def test_parse_override_reads_toml_values_and_bare_strings():
    assert parse_override("training.weight_l2=1e-4") == (["training", "weight_l2"], 1e-4)
    assert parse_override("training.algo = adam") == (["training", "algo"], "adam")
    assert parse_override('training.batch_size="32"') == (["training", "batch_size"], "32")
    assert parse_override("training.noise={'hid1:out' = 0.1}")[1] == {"hid1:out": 0.1}
    assert parse_override("training.recurrent_norm.weight=0.2")[0] == [
        "training",
        "recurrent_norm",
        "weight",
    ]
    with pytest.raises(ConfigError, match=r"--set weight_l2=1: the key must be SECTION.KEY"):
        parse_override("weight_l2=1")
    with pytest.raises(ConfigError, match="expected SECTION.KEY=VALUE"):
        parse_override("training.weight_l2")


def test_overrides_replace_and_nest_and_are_named_in_messages():
    c = cfg(
        MODEL + "[training]\nrecurrent_norm = 0.1\n",
        overrides=["training.recurrent_norm.weight=0.2", "training.recurrent_norm.squared=true"],
    )
    assert c.training["recurrent_norm"] == {"weight": 0.2, "squared": True}
    with pytest.raises(ConfigError, match=r"^--set training.weight_l22: unknown key"):
        cfg(MODEL, overrides=["training.weight_l22=1"]).check_training()
    with pytest.raises(ConfigError, match=r"unknown section 'trainig'.*\(closest: training\)"):
        cfg(MODEL, overrides=["trainig.algo=adam"])


def test_data_paths_are_relative_to_the_config_file(tmp_path):
    path = tmp_path / "sub" / "run.toml"
    path.parent.mkdir()
    path.write_text(MODEL + '[data]\ntrain = "train.npz"\nvalid = {x = "vx.npy", y = "vy.npy"}\n')
    c = load(path)
    assert c.data["train"] == str(tmp_path / "sub" / "train.npz")
    assert c.data["valid"] == {
        "x": str(tmp_path / "sub" / "vx.npy"),
        "y": str(tmp_path / "sub" / "vy.npy"),
    }


def test_examples_are_listed_and_load():
    shipped = examples()
    assert "digits" in shipped and "recurrent" in shipped["digits"][1]
    c = load(example="digits")
    assert c.data == {"builtin": "digits", "valid_fraction": 0.2, "split_seed": 0}
    with pytest.raises(
        ConfigError, match=r"--example: unknown example 'digit'.*\(closest: digits\)"
    ):
        load(example="digit")


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("[model\n", r"^run.toml: not valid TOML: .*line 1"),
        (
            MODEL + "[trainng]\n",
            r"^run.toml: \[trainng\]: unknown section; .*\(closest: training\)",
        ),
        ("[training]\n", r"^run.toml: \[model\]: missing"),
        ('[model]\nkind = "Classifier"\n', r"^run.toml: model.layers: missing"),
        (
            MODEL + "sed = 1\n",
            r"^run.toml: model.sed: unknown key; \[model\] takes .*\(closest: seed\)",
        ),
        (
            '[model]\nkind = "Classifer"\nlayers = [1, 1]\n',
            r"^run.toml: model.kind: unknown model kind 'Classifer'; .*\(closest: Classifier\)",
        ),
        (MODEL + 'seed = "1"\n', r"^run.toml: model.seed: expected an integer, got a string '1'"),
        (
            MODEL + 'mode = "NUMBAA"\n',
            r"^run.toml: model.mode: unknown mode 'NUMBAA'.*closest: NUMBA",
        ),
        (
            MODEL + '[data]\ntrain = "a.npz"\nvalid_fraction = 1.5\n',
            r"^run.toml: data.valid_fraction: must be between 0 and 1",
        ),
        (
            MODEL + '[data]\nbuiltin = "digits"\nx = "a"\n',
            r"^run.toml: data.x: not with builtin = 'digits'",
        ),
        (MODEL + '[data]\nbuiltin = "digit"\n', r"data.builtin: unknown data set 'digit'"),
        (MODEL + "[data]\nx = 'a'\n", r"^run.toml: data.train: missing"),
        (
            MODEL + '[data]\ntrain = {x = "a.npy", z = "b.npy"}\n',
            r"^run.toml: data.train.z: unknown array role; use x, y, weights",
        ),
        (MODEL + "[data]\ntrain = 3\n", r"data.train: expected a file path or a table"),
    ],
)
def test_reading_errors_name_the_file_key_and_closest(text, message):
    with pytest.raises(ConfigError, match=message):
        cfg(text)


def test_missing_and_directory_config_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: no such config file"):
        load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"is a directory"):
        load(tmp_path)


@pytest.mark.parametrize(
    "training, message",
    [
        (
            "weight_l22 = 1e-4",
            r"^run.toml: training.weight_l22: unknown keyword argument; it is not a hyperparameter of rmsprop, "
            r"a regularizer or a trainer option \(closest: weight_l2, weight_l1\)$",
        ),
        (
            'batch_size = "32"',
            r"^run.toml: training.batch_size: must be a positive int, got '32'$",
        ),
        (
            'algo = "adam"\nlearning_rate = "0.01"',
            r"^run.toml: training.learning_rate: must be a number >= 0 or a shared variable, "
            r"got '0.01'$",
        ),
        (
            'algo = "adam"\nmomentum = 0.9',
            r"^run.toml: training.momentum: not a hyperparameter of adam \(it belongs to momentum",
        ),
        ('algo = "adamm"', r"^run.toml: training.algo: unknown algorithm 'adamm'.*closest: adam"),
        ('run_dir = "x"', r"^run.toml: training.run_dir: is set by the command line \(--run-dir\)"),
        (
            'weight_l2 = "a lot"',
            r"^run.toml: training.weight_l2: expected a number, a dict of weight_l2's",
        ),
        (
            "weight_l2 = {weight = 1, patern = 'x'}",
            r"^run.toml: training.weight_l2: unknown argument 'patern'.*closest: pattern",
        ),
        ("save_every = '5x'", r"^run.toml: training.save_every: must be a positive number"),
        (
            "lr_schedule = {name = 'cosin'}",
            r"^run.toml: training.lr_schedule: unknown schedule 'cosin'",
        ),
    ],
)
def test_training_errors_are_one_line_with_file_key_and_closest(training, message):
    with pytest.raises(ConfigError, match=message):
        cfg(MODEL + "[training]\n" + training + "\n").check_training()


def test_patterns_are_checked_against_the_graph_without_compiling():
    c = cfg(MODEL + "[training]\nrecurrent_norm = {weight = 0.1, pattern = 'hid3:out'}\n")
    net = c.network()
    c.check_training()  # without a graph, patterns are not checked
    with pytest.raises(
        ConfigError,
        match=r"^run.toml: training.recurrent_norm: pattern 'hid3:out' matches no output; "
        r"outputs are .*\(closest: hid1:out\)",
    ):
        c.check_training(net.graph())


def test_model_errors_from_the_library_name_the_config_key():
    bad = '[model]\nkind = "Regressor"\nlayers = [3, {sise = 4}, 1]\n'
    with pytest.raises(ConfigError, match=r"^run.toml: model.layers\[1\]: unknown key 'sise'"):
        cfg(bad).network()
    bad = '[model]\nkind = "Classifier"\nlayers = [3, 2]\nloss = "mse"\n'
    with pytest.raises(ConfigError, match=r"^run.toml: model.loss: unknown loss 'mse'"):
        cfg(bad).network()


def test_backend_sets_and_restores_the_global_mode():
    import pytensor

    before = pytensor.config.mode
    with config.backend("JAX"):
        assert pytensor.config.mode == "JAX"
    assert pytensor.config.mode == before
    with config.backend(None):
        assert pytensor.config.mode == before
