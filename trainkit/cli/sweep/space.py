"""The space of a sweep: ``[sweep.space]`` entries as :class:`Param`, their keys checked.

A key is a dotted name as ``--set`` takes it (``training.learning_rate``),
checked against every key a config may hold (:func:`training_keys` for
``[training]``: any optimizer's hyperparameters, regularizers and trainer
options). A value is a range, ``{low = ..., high = ..., step = ..., log =
...}`` (an integer range when both bounds are integers), or a list of
choices; :func:`make_param` checks it and makes the :class:`Param` that samples
it for an Optuna trial. Every problem is a
:class:`~trainkit.cli.errors.ConfigError` naming the file and the key.
"""

import json
import math
import numbers
from dataclasses import dataclass, field

import regularizers
from regularizers.errors import closest_hint

from ... import optimizers
from ...training import options
from .. import configcheck
from ..errors import ConfigError

__all__ = ["Param", "RANGE_KEYS", "check_key", "make_param", "training_keys"]

RANGE_KEYS = ("low", "high", "step", "log")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def training_keys():
    """Every key ``[training]`` may hold in some config (any algo)."""
    keys = {"algo"}
    for name in optimizers.names():
        keys.update(optimizers.hyperparameters(name))
    keys.update(regularizers.names())
    keys.update(k for k in options.OPTIONS if k not in configcheck.CLI_OPTIONS)
    return sorted(keys)


def _all_keys():
    keys = [f"model.{k}" for k in configcheck.MODEL_KEYS] + [
        f"data.{k}" for k in configcheck.DATA_KEYS
    ]
    return keys + [f"training.{k}" for k in training_keys()]


@dataclass
class Param:
    """One entry of ``[sweep.space]``: a float or int range, or a list of choices.

    Choices that are not None, booleans, numbers or strings (layer lists,
    tables) are given to Optuna as their JSON text and decoded here.
    """

    key: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: list = field(default_factory=list)

    @property
    def encoded(self):
        """The choices as Optuna stores them."""
        return [self.encode(c) for c in self.choices]

    @staticmethod
    def encode(value):
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return json.dumps(value)

    def decode(self, value):
        """A value Optuna gave back -> the config value."""
        if self.kind != "categorical":
            return value
        return self.choices[self.encoded.index(value)]

    def suggest(self, trial):
        """Sample this parameter for an Optuna trial; returns the config value."""
        if self.kind == "categorical":
            return self.decode(trial.suggest_categorical(self.key, self.encoded))
        suggest = trial.suggest_int if self.kind == "int" else trial.suggest_float
        return suggest(self.key, self.low, self.high, step=self.step, log=self.log)

    def corners(self):
        """Values worth checking before a sweep starts: every choice, both bounds."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def grid(self):
        """Every value (for the grid sampler); ValueError for a float range."""
        if self.kind == "categorical":
            return self.encoded
        if self.kind == "int" and not self.log:
            return list(range(self.low, self.high + 1, self.step or 1))
        raise ValueError("the grid sampler takes lists of choices and integer ranges without log")

    def describe(self):
        if self.kind == "categorical":
            return json.dumps(self.choices)
        extra = f", step {self.step}" if self.step else ""
        return f"{self.kind} {self.low} .. {self.high}{' log' if self.log else ''}{extra}"


def make_param(source, key, value):
    where = f"{source}: sweep.space.{json.dumps(key)}"
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: an empty list of choices; give at least one")
        encoded = [Param.encode(v) for v in value]
        if len(set(map(json.dumps, encoded))) != len(encoded):
            raise ConfigError(f"{where}: choices repeat: {value!r}")
        return Param(key, "categorical", choices=list(value))
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: expected a range {{low = ..., high = ...}} or a list of choices, "
            f"got {value!r}"
        )
    for name in value:
        if name not in RANGE_KEYS:
            hint = closest_hint(name, RANGE_KEYS)
            raise ConfigError(
                f"{where}.{name}: unknown key; a range takes {', '.join(RANGE_KEYS)}{hint}"
            )
    for name in ("low", "high"):
        if name not in value:
            raise ConfigError(f"{where}: {name}: missing; a range needs low and high")
        if not _is_number(value[name]) or not math.isfinite(value[name]):
            raise ConfigError(f"{where}.{name}: expected a finite number, got {value[name]!r}")
    low, high, step, log = value["low"], value["high"], value.get("step"), value.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low = {low!r}, high = {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: log = true needs low > 0, got low = {low!r}")
    if step is not None:
        if not _is_number(step) or step <= 0:
            raise ConfigError(f"{where}.step: expected a positive number, got {step!r}")
        if log:
            raise ConfigError(f"{where}: give step or log = true, not both")
        if kind == "int" and not isinstance(step, int):
            raise ConfigError(
                f"{where}.step: an integer range needs an integer step, got {step!r} "
                f"(write low and high as floats, e.g. {float(low)}, for a float range)"
            )
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
            raise ConfigError(
                f"{where}: high - low = {high - low!r} is not a multiple of step = {step!r}"
            )
    return Param(key, kind, low, high, step, log)


def check_key(source, key):
    where = f"{source}: sweep.space.{json.dumps(key)}"
    parts = key.split(".")
    section, name = parts[0], parts[1] if len(parts) > 1 else ""
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"{where}: expected SECTION.KEY, e.g. training.learning_rate")
    allowed = {
        "model": list(configcheck.MODEL_KEYS),
        "data": list(configcheck.DATA_KEYS),
        "training": training_keys(),
    }
    if section not in allowed:
        hint = closest_hint(key, _all_keys())
        raise ConfigError(
            f"{where}: unknown section {section!r}; sections are {', '.join(allowed)}{hint}"
        )
    if name in configcheck.CLI_OPTIONS and section == "training":
        raise ConfigError(f"{where}: is set by the command line ({configcheck.CLI_OPTIONS[name]})")
    if name not in allowed[section]:
        what = {
            "model": f"[model] takes {', '.join(configcheck.MODEL_KEYS)}",
            "data": f"[data] takes {', '.join(configcheck.DATA_KEYS)}",
            "training": "[training] takes algo, an optimizer's hyperparameters, regularizers "
            "and trainer options",
        }[section]
        hint = closest_hint(key, _all_keys())
        raise ConfigError(f"{where}: not a config key; {what}{hint}")
