r"""The ``[sweep]`` section of a config: metric, direction, pruner, sampler, space.

A sweep file is an ordinary run config plus a ``[sweep]`` section::

    [sweep]
    metric = "loss"                  # a validation metric (valid_...), or train_...
    direction = "minimize"           # required for any metric but the loss
    pruner = "successive_halving"    # hyperband, median, threshold, none; or a table:
                                     # {name = "median", n_startup_trials = 3}
    sampler = "tpe"                  # random, grid (categorical and integer spaces)
    seed = 0                         # worker k samples with seed + k (tpe, random)

    [sweep.space]                    # keys: the dotted names of --set
    "training.learning_rate" = {low = 1e-4, high = 1e-1, log = true}
    "training.batch_size" = {low = 16, high = 128, step = 16}    # integers: int bounds
    "training.algo" = ["adam", "nadam"]
    "model.layers" = [[8, 16, 3], [8, 32, 3]]

The rest of the file is handed to :func:`trainkit.cli.config.load_text`
with the ``[sweep]`` section taken out, so a trial's config is checked
exactly like one given to ``trainkit train``. :meth:`SweepSpec.check`
checks the space and builds every corner of it (each choice, each bound)
before anything compiles.

>>> spec = parse_text('''
... [model]
... kind = "Regressor"
... layers = [2, 1]
... [data]
... builtin = "digits"
... [sweep.space]
... "training.learning_rate" = {low = 1e-3, high = 1e-1, log = true}
... "training.algo" = ["adam", "sgd"]
... ''', "run.toml")
>>> spec.metric, spec.direction, spec.pruner_name
('valid_loss', 'minimize', 'successive_halving')
>>> sorted(spec.space)
['training.algo', 'training.learning_rate']
>>> parse_text('[model]\nkind = "Regressor"\nlayers = [2, 1]\n[sweep.space]\n'
...            '"training.learning_rat" = [0.1]', "run.toml")
Traceback (most recent call last):
...
trainkit.cli.config.ConfigError: run.toml: sweep.space."training.learning_rat": not a config key; [training] takes algo, an optimizer's hyperparameters, regularizers and trainer options (closest: training.learning_rate)
"""  # noqa: E501

import copy
import inspect
import json
import math
import numbers
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import regularizers
from regularizers.errors import closest_hint

from .. import optimizers
from ..training import options
from . import config
from .config import ConfigError

__all__ = ["Param", "SweepSpec", "parse", "parse_text", "PRUNERS", "SAMPLERS"]

#: pruner names and their Optuna classes (``optuna.pruners.<name>``)
PRUNERS = {
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}
#: sampler names and their Optuna classes (``optuna.samplers.<name>``)
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler"}
SWEEP_KEYS = ("metric", "direction", "pruner", "sampler", "seed", "heartbeat", "retries", "space")
RANGE_KEYS = ("low", "high", "step", "log")
DIRECTIONS = ("minimize", "maximize")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def training_keys():
    """Every key ``[training]`` may hold in some config (any algo)."""
    keys = {"algo"}
    for name in optimizers.names():
        keys.update(optimizers.hyperparameters(name))
    keys.update(regularizers.names())
    keys.update(k for k in options.OPTIONS if k not in config.CLI_OPTIONS)
    return sorted(keys)


def _all_keys():
    keys = [f"model.{k}" for k in config.MODEL_KEYS] + [f"data.{k}" for k in config.DATA_KEYS]
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


def _param(source, key, value):
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


def _check_key(source, key):
    where = f"{source}: sweep.space.{json.dumps(key)}"
    parts = key.split(".")
    section, name = parts[0], parts[1] if len(parts) > 1 else ""
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"{where}: expected SECTION.KEY, e.g. training.learning_rate")
    allowed = {
        "model": list(config.MODEL_KEYS),
        "data": list(config.DATA_KEYS),
        "training": training_keys(),
    }
    if section not in allowed:
        hint = closest_hint(key, _all_keys())
        raise ConfigError(
            f"{where}: unknown section {section!r}; sections are {', '.join(allowed)}{hint}"
        )
    if name in config.CLI_OPTIONS and section == "training":
        raise ConfigError(f"{where}: is set by the command line ({config.CLI_OPTIONS[name]})")
    if name not in allowed[section]:
        what = {
            "model": f"[model] takes {', '.join(config.MODEL_KEYS)}",
            "data": f"[data] takes {', '.join(config.DATA_KEYS)}",
            "training": "[training] takes algo, an optimizer's hyperparameters, regularizers "
            "and trainer options",
        }[section]
        hint = closest_hint(key, _all_keys())
        raise ConfigError(f"{where}: not a config key; {what}{hint}")


@dataclass
class SweepSpec:
    """A parsed sweep file: the run config without ``[sweep]``, and the sweep settings."""

    source: str
    base_dir: Path
    base: dict
    space: dict
    metric: str = "valid_loss"
    direction: str = "minimize"
    pruner_name: str = "successive_halving"
    pruner_args: dict = field(default_factory=dict)
    sampler_name: str = "tpe"
    seed: int | None = None
    heartbeat: int = 60
    retries: int = 3

    # -- trials ---------------------------------------------------------------------

    def trial_config(self, values, label="trial"):
        """The :class:`~trainkit.cli.config.Config` of one point of the space.

        ``values`` maps dotted keys to config values; messages name the file
        as ``run.toml (trial 3)``.
        """
        raw = copy.deepcopy(self.base)
        for key, value in values.items():
            section, *path = key.split(".")
            target = raw.setdefault(section, {})
            for part in path[:-1]:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            target[path[-1]] = copy.deepcopy(value)
        text = config.dumps(raw)
        return config.load_text(text, f"{self.source} ({label})", self.base_dir)

    def check(self):
        """Check the space: build every corner's model and check its training keys.

        Returns the number of configs checked. Nothing compiles.
        """
        from . import run

        first = {key: param.corners()[0] for key, param in self.space.items()}
        checked = {}
        points = [first] + [
            {**first, key: value}
            for key, param in self.space.items()
            for value in param.corners()[1:]
        ]
        for point in points:
            ident = json.dumps(point, sort_keys=True, default=str)
            if ident in checked:
                continue
            label = ", ".join(f"{k} = {json.dumps(v)}" for k, v in point.items()) or "no space"
            run.prepare(self.trial_config(point, label))
            checked[ident] = True
        return len(checked)

    # -- Optuna -----------------------------------------------------------------------

    def pruner(self):
        optuna = _optuna()
        cls = getattr(optuna.pruners, PRUNERS[self.pruner_name])
        return cls(**self.pruner_args)

    def sampler(self, worker=0):
        """The sampler of worker ``worker``.

        TPE and random sampling are seeded ``seed + worker``, so workers draw
        different points; the grid sampler gets the same seed in every
        worker (its trial numbers index one shuffled grid that all must share).
        """
        optuna = _optuna()
        if self.sampler_name == "grid":
            space = {key: param.grid() for key, param in self.space.items()}
            return optuna.samplers.GridSampler(space, seed=self.seed or 0)
        seed = None if self.seed is None else self.seed + worker
        return getattr(optuna.samplers, SAMPLERS[self.sampler_name])(seed=seed)

    def fingerprint(self):
        """What must match when a sweep directory is continued: base config and space."""
        space = {k: vars(p) for k, p in self.space.items()}
        return json.dumps({"base": self.base, "space": space}, sort_keys=True, default=str)

    def metric_column(self):
        return self.metric


def _optuna():
    from ..tuning import require_optuna

    return require_optuna()


def _pruner(source, value):
    where = f"{source}: sweep.pruner"
    if isinstance(value, str):
        name, args = value, {}
    elif isinstance(value, dict):
        args = dict(value)
        name = args.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f'{where}.name: missing; e.g. {{name = "median", ...}}')
    else:
        raise ConfigError(f"{where}: expected a name or a table with name, got {value!r}")
    if name not in PRUNERS:
        hint = closest_hint(name, PRUNERS)
        raise ConfigError(
            f"{where}: unknown pruner {name!r}; pruners are {', '.join(PRUNERS)}{hint}"
        )
    optuna = _optuna()
    cls = getattr(optuna.pruners, PRUNERS[name])
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in args:
        if key not in accepted:
            hint = closest_hint(key, accepted)
            raise ConfigError(
                f"{where}.{key}: unknown argument of the {name} pruner; it takes "
                f"{', '.join(accepted) or 'none'}{hint}"
            )
    args = {
        k: None if isinstance(v, str) and v.lower() == config.NONE else v for k, v in args.items()
    }
    try:
        cls(**args)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None
    return name, args


def parse_text(text, source="<sweep>", base_dir="."):
    """Read a sweep file's text; ConfigError (one line) for a bad ``[sweep]``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    sweep = raw.pop("sweep", None)
    if sweep is None:
        raise ConfigError(
            f"{source}: [sweep]: missing; a sweep needs [sweep.space], e.g. "
            f'"training.learning_rate" = {{low = 1e-4, high = 1e-1, log = true}}'
        )
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: sweep: expected a [sweep] table, got {sweep!r}")
    for key in sweep:
        if key not in SWEEP_KEYS:
            hint = closest_hint(key, SWEEP_KEYS)
            raise ConfigError(
                f"{source}: sweep.{key}: unknown key; [sweep] takes {', '.join(SWEEP_KEYS)}{hint}"
            )
    spec = SweepSpec(source=source, base_dir=Path(base_dir).resolve(), base=raw, space={})
    # the run config alone is an ordinary config
    config.load_text(config.dumps(raw), source, base_dir)

    metric = sweep.get("metric", "loss")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"{source}: sweep.metric: expected a metric name, got {metric!r}")
    spec.metric = metric if metric.startswith(("valid_", "train_")) else f"valid_{metric}"
    direction = sweep.get("direction")
    if direction is None:
        if spec.metric != "valid_loss":
            raise ConfigError(
                f"{source}: sweep.direction: missing; say whether {metric} is to be "
                f'"minimize"d or "maximize"d (only the loss defaults to minimize)'
            )
        direction = "minimize"
    if direction not in DIRECTIONS:
        hint = closest_hint(str(direction), DIRECTIONS)
        raise ConfigError(
            f"{source}: sweep.direction: must be minimize or maximize, got {direction!r}{hint}"
        )
    spec.direction = direction
    spec.pruner_name, spec.pruner_args = _pruner(source, sweep.get("pruner", "successive_halving"))
    sampler = sweep.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        hint = closest_hint(str(sampler), SAMPLERS)
        raise ConfigError(
            f"{source}: sweep.sampler: unknown sampler {sampler!r}; samplers are "
            f"{', '.join(SAMPLERS)}{hint}"
        )
    spec.sampler_name = sampler
    for key in ("seed", "heartbeat", "retries"):
        if key in sweep:
            value = sweep[key]
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < (key == "heartbeat")
            ):
                least = 1 if key == "heartbeat" else 0
                raise ConfigError(
                    f"{source}: sweep.{key}: expected an integer >= {least}, got {value!r}"
                )
            setattr(spec, key, value)

    space = sweep.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(
            f"{source}: sweep.space: missing or empty; e.g. [sweep.space] "
            f'"training.learning_rate" = {{low = 1e-4, high = 1e-1, log = true}}'
        )
    for key, value in space.items():
        _check_key(source, key)
        spec.space[key] = _param(source, key, value)
    if spec.sampler_name == "grid":
        for key, param in spec.space.items():
            try:
                param.grid()
            except ValueError as error:
                raise ConfigError(f"{source}: sweep.space.{json.dumps(key)}: {error}") from None
    return spec


def parse(path):
    """Read a sweep file (see :func:`parse_text`)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a sweep file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the sweep file ({error})") from None
    return parse_text(text, str(path), path.parent)
