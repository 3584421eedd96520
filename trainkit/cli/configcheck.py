"""What a run config may hold, and the checks of its sections as read.

The sections and their keys (:data:`MODEL_KEYS`, :data:`DATA_KEYS`,
:data:`SECTIONS`), the trainer options only the command line sets
(:data:`CLI_OPTIONS`), the ``[training]`` keys a resumed run may change
(:data:`RESUMABLE`), the model kinds and the built-in data sets. The checks
(:func:`check_model`, :func:`check_data`, :func:`check_tables`) look at types,
unknown keys, kinds, modes and data sources before anything is built;
``[training]`` is checked by :meth:`trainkit.cli.config.Config.check_training`.
Every problem is a :class:`~trainkit.cli.errors.ConfigError`.
"""

from regularizers.errors import closest_hint, unknown

from .errors import ConfigError
from .toml import NONE

__all__ = [
    "MODEL_KEYS",
    "DATA_KEYS",
    "SECTIONS",
    "CLI_OPTIONS",
    "RESUMABLE",
    "KINDS",
    "BUILTIN",
    "as_none",
    "check_data",
    "check_mode",
    "check_model",
    "check_tables",
]

#: keys of ``[model]`` and what they mean
MODEL_KEYS = {
    "kind": "model class: Regressor, Classifier or Autoencoder",
    "layers": "layer list: input size (or {shape = [H, W, C]}, {vocab = V}), then a size, "
    '[size, activation] or table per layer, e.g. {form = "conv1d", size = 8, kernel = 3}',
    "loss": "loss name (default per kind: mse, xent, mse)",
    "hidden_activation": "activation of hidden layers that name none",
    "seed": "seed of the parameter initialisation",
    "dtype": "float32 or float64",
    "mode": "PyTensor mode (JAX, NUMBA, FAST_COMPILE, CVM, ...); default trainkit's (JAX)",
}
#: keys of ``[data]`` and what they mean
DATA_KEYS = {
    "builtin": "a data set shipped with trainkit: digits",
    "train": "training data: a .npz, .csv or .npy file, or {x = 'x.npy', y = 'y.npy'}",
    "valid": "validation data, in the same forms as train",
    "x": "array name (.npz) or column name(s) (.csv) of the inputs",
    "y": "array name (.npz) or column name(s) (.csv) of the targets",
    "lengths": "array name (.npz) or column name (.csv) of the sequence lengths "
    "(models whose input entry has lengths = true)",
    "weights": "array name (.npz) or column name (.csv) of the sample weights",
    "valid_fraction": "fraction of the training data held out for validation (no valid file)",
    "split_seed": "seed of the validation split",
}
#: the sections of a config and what they hold
SECTIONS = {
    "model": MODEL_KEYS,
    "data": DATA_KEYS,
    "training": None,  # algo + optimizer hyperparameters, regularizers, trainer options
}
#: trainer options the command line sets itself, never a config
CLI_OPTIONS = {
    "run_dir": "--run-dir",
    "save_progress": "--run-dir (checkpoint.npz in the run directory)",
    "resume": "--resume",
    "callbacks": "the command line",
}
#: ``[training]`` keys that may change when a run is resumed
RESUMABLE = ("max_updates", "max_epochs", "patience", "min_improvement", "save_every")
RESUMABLE += ("progress", "log")
KINDS = ("Regressor", "Classifier", "Autoencoder")
BUILTIN = ("digits",)


def as_none(value):
    return None if isinstance(value, str) and value.lower() == NONE else value


def _kind_of(value):
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


# -- checks -----------------------------------------------------------------------


def _check_keys(config, section, values, allowed):
    for key in values:
        if key not in allowed:
            hint = closest_hint(key, allowed)
            raise config.error(
                section, key, f"unknown key; [{section}] takes {', '.join(allowed)}{hint}"
            )


def _expect(config, section, key, value, kinds, what, allow_none=False):
    if allow_none and as_none(value) is None:
        return
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        raise config.error(section, key, f"expected {what}, got {_kind_of(value)} {value!r}")


def check_model(config):
    model = config.model
    _check_keys(config, "model", model, MODEL_KEYS)
    for key in ("kind", "layers"):
        if key not in model:
            raise ConfigError(
                f"{config.source}: model.{key}: missing; [model] needs kind "
                f"({', '.join(KINDS)}) and layers"
            )
    kind = model["kind"]
    _expect(config, "model", "kind", kind, (str,), "a string")
    if kind not in KINDS:
        raise config.error("model", "kind", unknown("", kind, KINDS, kind="model kind")[2:])
    _expect(config, "model", "layers", model["layers"], (list,), "an array of layers")
    for key in ("loss", "hidden_activation", "dtype", "mode"):
        if key in model:
            _expect(config, "model", key, model[key], (str,), "a string", allow_none=True)
    if "seed" in model:
        _expect(config, "model", "seed", model["seed"], (int,), "an integer")
        if model["seed"] < 0:
            raise config.error(
                "model", "seed", f"must be a non-negative integer, got {model['seed']}"
            )
    _check_names(config, model)
    mode = as_none(model.get("mode"))
    if mode is not None:
        from pytensor.compile.mode import predefined_modes

        known = ["FAST_RUN", *predefined_modes]
        if mode not in known:
            raise config.error("model", "mode", unknown("", mode, known, kind="mode")[2:])


def _check_names(config, model):
    """``hidden_activation``, ``loss`` and ``dtype``: known names, reported as those keys."""
    from ..layers import activations
    from ..models import losses

    for key, names, kind in (
        ("hidden_activation", activations.names(), "activation"),
        ("loss", losses.names(), "loss"),
        ("dtype", ["float32", "float64"], "dtype"),
    ):
        value = as_none(model.get(key))
        if isinstance(value, str) and value not in names:
            raise config.error("model", key, unknown("", value, names, kind=kind)[2:])


def check_data(config):
    data = config.data
    _check_keys(config, "data", data, DATA_KEYS)
    if "builtin" in data:
        name = data["builtin"]
        _expect(config, "data", "builtin", name, (str,), "a string")
        if name not in BUILTIN:
            raise config.error("data", "builtin", unknown("", name, BUILTIN, kind="data set")[2:])
        clash = [k for k in ("train", "valid", "x", "y", "weights") if k in data]
        if clash:
            raise config.error(
                "data", clash[0], f"not with builtin = {name!r} (it brings its own arrays)"
            )
    elif data and "train" not in data:
        raise ConfigError(
            f"{config.source}: data.train: missing; [data] needs train (a file) or builtin"
        )
    for key in ("train", "valid"):
        if key not in data:
            continue
        value = data[key]
        _expect(config, "data", key, value, (str, dict), "a file path or a table of .npy files")
    for key in ("x", "y", "weights"):
        if key in data:
            value = data[key]
            ok = isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise config.error(
                    "data",
                    key,
                    f"expected an array or column name, or an array of column names, got "
                    f"{_kind_of(value)} {value!r}",
                )
    if "valid_fraction" in data:
        fraction = data["valid_fraction"]
        _expect(config, "data", "valid_fraction", fraction, (int, float), "a number")
        if not 0 < fraction < 1:
            raise config.error(
                "data", "valid_fraction", f"must be between 0 and 1 (exclusive), got {fraction!r}"
            )
        if "valid" in data:
            raise config.error("data", "valid_fraction", "give valid or valid_fraction, not both")
    if "split_seed" in data:
        seed = data["split_seed"]
        _expect(config, "data", "split_seed", seed, (int,), "an integer")
        if seed < 0:
            raise config.error("data", "split_seed", f"must be >= 0, got {seed}")


def check_tables(config, section, key, value):
    """Check that a table of per-role .npy files names only x, y, weights."""
    if isinstance(value, dict):
        for role, path in value.items():
            if role not in ("x", "y", "weights"):
                hint = closest_hint(role, ["x", "y", "weights"])
                raise config.error(
                    section, f"{key}.{role}", f"unknown array role; use x, y, weights{hint}"
                )
            _expect(config, section, f"{key}.{role}", path, (str,), "a file path")


def check_mode(mode, argument="--mode"):
    """Refuse a mode PyTensor does not know, in one line (before PyTensor is asked)."""
    from pytensor.compile.mode import Mode, predefined_modes

    if isinstance(mode, Mode):
        return
    known = ["FAST_RUN", *predefined_modes]
    if mode not in known:
        raise ConfigError(unknown(argument, mode, known, kind="mode"))
