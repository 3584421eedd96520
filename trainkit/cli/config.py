r"""Run configurations: a TOML file with ``[model]``, ``[data]`` and ``[training]``.

The command line reads one of these; every key has the name of the Python
argument it becomes::

    [model]                      # trainkit.Classifier(layers, seed=0, ...)
    kind = "Classifier"          # Regressor | Classifier | Autoencoder
    layers = [8, {size = 32, form = "rnn", return_sequences = false}, 10]

    [data]                       # arrays for net.train(train, valid)
    train = "train.npz"          # .npz (named arrays), .csv (named columns), .npy
    x = "images"                 # which array (or columns) is x, y, weights
    y = "labels"
    valid_fraction = 0.2         # or valid = "valid.npz"

    [training]                   # net.train(..., algo="adam", **everything else)
    algo = "adam"
    learning_rate = 0.01
    recurrent_norm = 0.1
    hidden_dropout = {weight = 0.2, pattern = "hid1:out"}

TOML has no null: the string ``"none"`` stands for Python's ``None`` in
``[model]`` and ``[training]`` (``patience = "none"`` never stops early). A
layer entry ``[64, "tanh"]`` is the tuple ``(64, "tanh")``. Relative data
paths are relative to the config file (to the working directory when given
with ``--set``).

Every problem is a :class:`ConfigError` whose message is one line naming the
file, the key, the value, what is allowed and the closest valid key:

>>> text = '[model]\nkind = "Regressor"\nlayers = [2, 1]\n[training]\nweight_l22 = 1e-4'
>>> load_text(text, "run.toml").check_training()
Traceback (most recent call last):
...
trainkit.cli.errors.ConfigError: run.toml: training.weight_l22: unknown keyword argument; it is not a hyperparameter of rmsprop, a regularizer or a trainer option (closest: weight_l2, weight_l1)
"""  # noqa: E501

import contextlib
import copy
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from regularizers.errors import ArgumentError, closest_hint

from ..training import options
from .configcheck import (
    CLI_OPTIONS,
    SECTIONS,
    as_none,
    check_data,
    check_mode,
    check_model,
    check_tables,
)
from .errors import ConfigError
from .shipped import example_path

__all__ = [
    "Config",
    "load",
    "load_text",
    "parse_override",
    "backend",
]


# -- --set KEY=VALUE ---------------------------------------------------------------


def parse_override(text):
    """``'training.weight_l2=1e-4'`` -> ``(['training', 'weight_l2'], 1e-4)``.

    The value is read as a TOML value (numbers, booleans, strings in quotes,
    arrays, inline tables); anything that is not one is a bare string, so
    ``training.algo=adam`` works. Quote a string that looks like a number:
    ``training.save_every='"100"'``.

    >>> parse_override("model.layers=[8, {size = 4, form = 'rnn'}, 10]")
    (['model', 'layers'], [8, {'size': 4, 'form': 'rnn'}, 10])
    >>> parse_override("training.algo=adam")
    (['training', 'algo'], 'adam')
    """
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected SECTION.KEY=VALUE, e.g. training.weight_l2=1e-4")
    key, raw = text.split("=", 1)
    path = [part.strip() for part in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(
            f"--set {text}: the key must be SECTION.KEY (sections: {', '.join(SECTIONS)}), "
            f"got {key.strip()!r}"
        )
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


# -- the config -------------------------------------------------------------------


@dataclass
class Config:
    """A run configuration, checked section by section.

    Attributes
    ----------
    source : str
        What messages call the config (the file as given).
    base_dir : Path
        Where relative data paths in the file are resolved.
    model, data, training : dict
        The sections as read (after ``--set`` overrides), data paths absolute.
    overridden : set of str
        Dotted keys that came from ``--set`` (messages name ``--set`` for them).
    notes : list of str
        Lines for the user about the file (a ``[sweep]`` section ignored).
    """

    source: str
    base_dir: Path
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    overridden: set = field(default_factory=set)
    notes: list = field(default_factory=list)

    # -- messages ---------------------------------------------------------------

    def where(self, section, key=None):
        """``'run.toml: training.weight_l2'``, or ``'--set training.weight_l2'``."""
        dotted = section if key is None else f"{section}.{key}"
        if key is not None:
            # 'layers[1]: form' is about model.layers: the key is the leading name
            base = re.match(r"[A-Za-z0-9_-]*", str(key)).group()
            if f"{section}.{base}" in self.overridden:
                return f"--set {dotted}"
        if self.overridden:  # the file as --set changed it: say so
            shown = ", ".join(f"--set {k}" for k in sorted(self.overridden))
            return f"{self.source} (with {shown}): {dotted}"
        return f"{self.source}: {dotted}"

    def error(self, section, key, message):
        return ConfigError(f"{self.where(section, key)}: {message}")

    def rephrase(self, section, error, keys=()):
        """A library error as a ConfigError naming the file and the key it is about.

        An :class:`~regularizers.errors.ArgumentError` says which argument it
        is about, which becomes ``file: section.argument``; other errors are
        about the section as a whole. (``keys`` is accepted for callers that
        list the section's keys; the error's own field decides.)
        """
        if isinstance(error, ArgumentError):
            return ConfigError(f"{self.where(section, error.argument)}: {error.problem}")
        message = error if isinstance(error, str) else str(error)
        return ConfigError(f"{self.where(section)}: {message}")

    # -- sections ---------------------------------------------------------------

    def as_dict(self):
        """The sections as a plain dict (what :func:`dumps` writes)."""
        sections = {"model": self.model, "data": self.data, "training": self.training}
        return copy.deepcopy({k: v for k, v in sections.items() if v or k != "data"})

    @property
    def kind(self):
        return self.model["kind"]

    @property
    def algo(self):
        return self.training.get("algo", "rmsprop")

    @property
    def mode(self):
        """The PyTensor mode (``[model] mode``, else ``[training] mode``), or None."""
        mode = as_none(self.model.get("mode"))
        return mode if mode is not None else as_none(self.training.get("mode"))

    def model_kwargs(self):
        """Keyword arguments of the model class (``kind`` left out)."""
        kwargs = {}
        for key, value in self.model.items():
            if key == "kind":
                continue
            value = as_none(value)
            if key == "layers":
                value = [tuple(v) if isinstance(v, list) else v for v in value]
            kwargs[key] = value
        return kwargs

    def training_kwargs(self):
        """Keyword arguments of ``net.train`` (``algo`` left out; ``"none"`` is None)."""
        return {k: as_none(v) for k, v in self.training.items() if k != "algo"}

    def network(self):
        """Build the model (no compiling); ConfigError for a bad ``[model]``."""
        from ..models import Autoencoder, Classifier, Regressor

        cls = {c.__name__: c for c in (Regressor, Classifier, Autoencoder)}[self.kind]
        try:
            with backend(self.mode):
                return cls(**self.model_kwargs())
        except (ValueError, TypeError) as error:
            raise self.rephrase("model", error) from error

    def check_training(self, graph=None):
        """Check ``[training]`` without compiling; returns the parsed TrainingSpec.

        The keywords are parsed by :func:`trainkit.training.spec.parse`, the
        same parse ``net.train`` makes; keys the command line sets are
        refused first. With ``graph``, every regularizer's (and monitor's)
        selection is checked too.
        """
        from ..training import monitors
        from ..training.spec import parse

        kwargs = self.training_kwargs()
        for key in kwargs:
            if key in CLI_OPTIONS:
                raise self.error(
                    "training", key, f"is set by the command line ({CLI_OPTIONS[key]}); remove it"
                )
        try:
            spec = parse(
                self.algo,
                trainer_options_allowed=[k for k in options.OPTIONS if k not in CLI_OPTIONS],
                # the command line always writes a checkpoint (save_every needs one)
                # and runs in a run directory (loggers write there)
                implied_options={"save_progress": "checkpoint.npz", "run_dir": "."},
                **kwargs,
            )
            if graph is not None:
                for reg in spec.regularizers:
                    reg.targets(graph)
                monitors.build(spec.options.monitors, graph)
        except (ValueError, TypeError) as error:
            raise self.rephrase("training", error) from error
        return spec


@contextlib.contextmanager
def backend(mode):
    """Make ``mode`` PyTensor's default mode while the block runs (None: leave it).

    A network's ``mode`` argument compiles its own functions, but scan's inner
    loops and composite ops (softmax) compile with ``pytensor.config.mode``;
    the command line owns its process, so it sets both.
    """
    if mode is None:
        yield
        return
    import pytensor

    check_mode(mode)
    with pytensor.config.change_flags(mode=mode):
        yield


# -- reading ----------------------------------------------------------------------


def _absolute(value, base):
    def one(path):
        path = Path(os.path.expanduser(path))
        return os.fspath(path if path.is_absolute() else (base / path).resolve())

    if isinstance(value, str):
        return one(value)
    if isinstance(value, dict):
        return {k: one(v) if isinstance(v, str) else v for k, v in value.items()}
    return value


def _apply_override(config, path, value):
    section, *keys = path
    if section not in SECTIONS:
        hint = closest_hint(section, SECTIONS)
        raise ConfigError(
            f"--set {'.'.join(path)}: unknown section {section!r}; sections are "
            f"{', '.join(SECTIONS)}{hint}"
        )
    target = getattr(config, section)
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    if section == "data" and keys[0] in ("train", "valid"):
        value = _absolute(value, Path.cwd())
    target[keys[-1]] = value
    config.overridden.add(f"{section}.{keys[0]}")


def load_text(text, source="<config>", base_dir=".", overrides=()):
    """Read and check a config from TOML ``text`` (see :func:`load`)."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some Windows editors write
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    config = Config(source=source, base_dir=Path(base_dir).resolve())
    if isinstance(raw.get("sweep"), dict):  # a sweep file is a run config plus [sweep]
        raw.pop("sweep")
        config.notes.append(
            f"note: {source}: [sweep] ignored (a single run of the base config); run the "
            f"sweep with: trainkit sweep {source}"
        )
    for name, values in raw.items():
        if name not in SECTIONS:
            hint = closest_hint(name, SECTIONS)
            raise ConfigError(
                f"{source}: [{name}]: unknown section; sections are {', '.join(SECTIONS)}{hint}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {name}: expected a [{name}] table, got {values!r}")
        setattr(config, name, values)
    for key in ("train", "valid"):
        if key in config.data:
            config.data[key] = _absolute(config.data[key], config.base_dir)
    for override in overrides:
        path, value = parse_override(override) if isinstance(override, str) else override
        _apply_override(config, path, value)
    if not config.model:
        raise ConfigError(f"{source}: [model]: missing; a config needs [model] with kind, layers")
    check_model(config)
    check_data(config)
    modes = as_none(config.model.get("mode")), as_none(config.training.get("mode"))
    if isinstance(modes[1], str):
        try:
            check_mode(modes[1], argument="")
        except ConfigError as error:
            raise config.error("training", "mode", str(error)[2:]) from None
    if None not in modes and modes[0] != modes[1]:
        raise config.error(
            "training",
            "mode",
            f"{modes[1]!r} disagrees with model.mode {modes[0]!r}; give the mode once",
        )
    for key in ("train", "valid"):
        if key in config.data:
            check_tables(config, "data", key, config.data[key])
    return config


def load(path=None, example=None, overrides=()):
    """Read and check a config file (or the shipped example ``example``).

    Parameters
    ----------
    path : str or Path, optional
        The TOML file.
    example : str, optional
        Name of a shipped example (``trainkit list examples``), instead of ``path``.
    overrides : sequence of str
        ``SECTION.KEY=VALUE`` strings (``--set``), applied in order.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Missing file, bad TOML, unknown section or key, wrong type.
    """
    if (path is None) == (example is None):
        raise ConfigError("give a config file or --example NAME (one of them)")
    if example is not None:
        path = example_path(example)
        source = os.fspath(path)
    else:
        source = os.fspath(path)
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"{source}: is a directory, not a config file")
        if not path.exists():
            raise ConfigError(f"{source}: no such config file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot read the config ({error})") from None
    return load_text(text, source=source, base_dir=Path(path).parent, overrides=overrides)
