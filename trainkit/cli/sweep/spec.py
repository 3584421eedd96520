r"""The ``[sweep]`` section of a config: metric, direction, pruner, sampler, space.

A sweep file is an ordinary run config plus a ``[sweep]`` section::

    [sweep]
    metric = "loss"                  # a validation metric (valid_...), or train_...
    direction = "minimize"           # required for any metric but the loss
    pruner = "successive_halving"    # hyperband, median, threshold, none; or a table:
                                     # {name = "median", n_startup_trials = 3}
    sampler = "tpe"                  # random, grid (categorical and integer spaces)
    seed = 0                         # trial n samples with a seed from (seed, n) (tpe, random)

    [sweep.space]                    # keys: the dotted names of --set
    "training.learning_rate" = {low = 1e-4, high = 1e-1, log = true}
    "training.batch_size" = {low = 16, high = 128, step = 16}    # integers: int bounds
    "training.algo" = ["adam", "nadam"]
    "model.layers" = [[8, 16, 3], [8, 32, 3]]

The rest of the file is handed to :func:`trainkit.cli.config.load_text`
with the ``[sweep]`` section taken out, so a trial's config is checked
exactly like one given to ``trainkit train``. :meth:`SweepSpec.check`
checks the space and builds every corner of it (each choice, each bound)
before anything compiles. The space's entries and keys are read by
:mod:`~trainkit.cli.sweep.space`.

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
trainkit.cli.errors.ConfigError: run.toml: sweep.space."training.learning_rat": not a config key; [training] takes algo, an optimizer's hyperparameters, regularizers and trainer options (closest: training.learning_rate)
"""  # noqa: E501

import copy
import inspect
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from regularizers.errors import closest_hint

from .. import config, toml
from ..errors import ConfigError
from .space import check_key, make_param

__all__ = ["SweepSpec", "parse", "parse_text", "trial_seed", "PRUNERS", "SAMPLERS"]

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
DIRECTIONS = ("minimize", "maximize")


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
        text = toml.dumps(raw)
        return config.load_text(text, f"{self.source} ({label})", self.base_dir)

    def check(self, data=True):
        """Check the space: build every corner's model and check its training keys and,
        with ``data``, the data against it (shapes, label ranges, ...).

        Returns the number of configs checked. Nothing compiles: the data
        checks stop where compiling would begin.
        """
        import tempfile

        from .. import run
        from .datacheck import check_corner_data

        first = {key: param.corners()[0] for key, param in self.space.items()}
        checked = {}
        points = [first] + [
            {**first, key: value}
            for key, param in self.space.items()
            for value in param.corners()[1:]
        ]
        loaded = {}
        with tempfile.TemporaryDirectory(prefix="trainkit-sweep-check-") as scratch:
            for point in points:
                ident = json.dumps(point, sort_keys=True, default=str)
                if ident in checked:
                    continue
                label = ", ".join(f"{k} = {json.dumps(v)}" for k, v in point.items()) or "no space"
                cfg = self.trial_config(point, label)
                net = run.prepare(cfg)
                if data:
                    check_corner_data(cfg, net, loaded, scratch)
                checked[ident] = True
        return len(checked)

    # -- Optuna -----------------------------------------------------------------------

    def pruner(self):
        optuna = _optuna()
        cls = getattr(optuna.pruners, PRUNERS[self.pruner_name])
        return cls(**self.pruner_args)

    def sampler(self, worker=0):
        """The sampler of worker ``worker``.

        TPE and random sampling with a ``seed`` are seeded per trial, from
        ``(seed, trial number)``: the trial numbers the storage hands out
        differ between workers, hosts and reruns, so no two trials replay
        the same draws, and a trial's draws do not depend on which process
        ran it. The grid sampler gets the same seed in every worker (its
        trial numbers index one shuffled grid that all must share).
        """
        optuna = _optuna()
        if self.sampler_name == "grid":
            space = {key: param.grid() for key, param in self.space.items()}
            return optuna.samplers.GridSampler(space, seed=self.seed or 0)
        cls = getattr(optuna.samplers, SAMPLERS[self.sampler_name])
        if self.seed is None:
            return cls()
        return _seeded_per_trial(cls)(self.seed, seed=self.seed)

    def fingerprint(self):
        """What must match when a sweep directory is continued: base config and space."""
        space = {k: vars(p) for k, p in self.space.items()}
        return json.dumps({"base": self.base, "space": space}, sort_keys=True, default=str)

    def metric_column(self):
        return self.metric


def trial_seed(seed, number):
    """The seed of trial ``number`` in a sweep seeded ``seed`` (a 32-bit int).

    >>> trial_seed(0, 1) != trial_seed(0, 2) != trial_seed(1, 1)
    True
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


_PER_TRIAL = {}


def _seeded_per_trial(cls):
    """``cls`` (an Optuna sampler) reseeded before each trial from ``(seed, number)``."""
    if cls not in _PER_TRIAL:

        class PerTrial(cls):
            def __init__(self, base_seed, **kwargs):
                super().__init__(**kwargs)
                self._base_seed = base_seed

            def before_trial(self, study, trial):
                seed = trial_seed(self._base_seed, trial.number)
                self._rng.rng.seed(seed)
                inner = getattr(self, "_random_sampler", None)  # TPE's start-up sampler
                if inner is not None:
                    inner._rng.rng.seed(trial_seed(seed, 1))
                super().before_trial(study, trial)

        PerTrial.__name__ = PerTrial.__qualname__ = f"PerTrial{cls.__name__}"
        _PER_TRIAL[cls] = PerTrial
    return _PER_TRIAL[cls]


def _optuna():
    from ...tuning import require_optuna

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
        k: None if isinstance(v, str) and v.lower() == toml.NONE else v for k, v in args.items()
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
    config.load_text(toml.dumps(raw), source, base_dir)

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
        check_key(source, key)
        spec.space[key] = make_param(source, key, value)
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
