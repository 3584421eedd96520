"""The trainer's options: one name each, a default, a check and a description.

Every keyword that is not an optimizer hyperparameter or a regularizer must
be one of these (the assembly step rejects anything else). ``parse`` checks
values before anything is compiled.

>>> opts = parse({"batch_size": 64, "patience": 3})
>>> opts.batch_size, opts.patience, opts.nan_policy
(64, 3, 'raise')
>>> parse({"batch_size": 0})
Traceback (most recent call last):
...
regularizers.errors.InvalidArgument: batch_size: must be a positive int, got 0
"""

import numbers
import os
import re
from dataclasses import dataclass
from types import SimpleNamespace

from regularizers.errors import (
    InvalidArgument,
    UnknownArgument,
    closest,
    closest_hint,
    listing,
    unknown,
)

from .loggers import check_loggers
from .loggers import resolve as resolve_loggers

__all__ = ["HOOKS", "OPTIONS", "TRAINER_OPTIONS", "parse", "parse_every"]


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        extra = " or None" if allow_none else ""
        raise InvalidArgument(name, f"must be a positive int{extra}, got {value!r}", value)
    return int(value)


def _non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgument(name, f"must be a non-negative int, got {value!r}", value)
    return int(value)


def _non_negative_float(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise InvalidArgument(name, f"must be a non-negative number, got {value!r}", value)
    return float(value)


def _bool(name, value):
    if not isinstance(value, bool):
        raise InvalidArgument(name, f"must be True or False, got {value!r}", value)
    return value


def _fraction(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise InvalidArgument(name, f"must be a number in (0, 1) or None, got {value!r}", value)
    return float(value)


def _optional_bool(name, value):
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(name, f"must be True, False or None, got {value!r}", value)
    return value


def _choice(*choices):
    def check(name, value):
        if value not in choices:
            raise InvalidArgument(
                name,
                unknown(name, value, choices, kind="value", sort=False)[len(name) + 2 :],
                value,
                choices,
                closest(value, choices) if isinstance(value, str) else [],
            )
        return value

    return check


def _path(name, value):
    if value is None:
        return None
    if not isinstance(value, (str, bytes)) and not hasattr(value, "__fspath__"):
        raise InvalidArgument(name, f"must be a file path or None, got {value!r}", value)
    return value


def _seed(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgument(name, f"must be a non-negative int, got {value!r}", value)
    return int(value)


def _progress(name, value):
    if value not in (True, False, "auto"):
        raise InvalidArgument(name, f"must be True, False or 'auto', got {value!r}", value)
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_every(name, value):
    """``save_every``: an int (updates) or a string like ``'90s'``, ``'10m'``, ``'1h'``.

    Returns ``('updates', n)``, ``('seconds', t)`` or None.
    """
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh])\s*", value)
        if not match or float(match.group(1)) <= 0:
            raise InvalidArgument(
                name,
                f"must be a positive number of updates or a duration like '90s', '10m', '1h', "
                f"got {value!r}",
                value,
            )
        return ("seconds", float(match.group(1)) * _UNITS[match.group(2)])
    return ("updates", _positive_int(name, value))


def _anything(name, value):
    return value


def _mode(name, value):
    """None, a PyTensor Mode object, or the name of one of PyTensor's modes."""
    if value is None or not isinstance(value, str):
        return value
    from pytensor.compile.mode import predefined_modes

    choices = ["FAST_RUN", *predefined_modes]
    if value not in choices:
        raise InvalidArgument(
            name,
            unknown(name, value, choices, kind="PyTensor mode", sort=False)[len(name) + 2 :],
            value,
            choices,
            closest(value, choices),
        )
    return value


def _data_parallel(name, value):
    """None, the name of a communication engine ('mpi'), or a Communicator object."""
    from ..distributed.communicator import ENGINES, Communicator

    if value is None or isinstance(value, Communicator):
        return value
    choices = list(ENGINES)
    if value not in choices:
        raise InvalidArgument(
            name,
            f"unknown value {value!r}; choose from {listing(choices)}, a "
            f"trainkit.distributed.Communicator, or None{closest_hint(value, choices)}",
            value,
            choices,
            closest(value, choices) if isinstance(value, str) else [],
        )
    return value


#: the methods a callback may have (see :mod:`trainkit.callbacks`)
HOOKS = ("on_start", "on_update", "on_validation", "on_step_end", "on_end", "on_compile")


def _class_weight(name, value):
    """None, a list of weights >= 0, or a dict {class (an int >= 0): weight >= 0}.

    The number of classes is the model's: ``net.train`` checks the length and
    the class range against the output layer before building the loss.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        raise InvalidArgument(
            name, f"must be a list of weights or a dict {{class: weight}}, got {value!r}", value
        )
    if not items:
        raise InvalidArgument(name, "must not be empty", value)
    for cls, weight in items:
        label = int(cls) if isinstance(cls, str) and cls.isdigit() else cls
        if isinstance(label, bool) or not isinstance(label, numbers.Integral) or label < 0:
            raise InvalidArgument(name, f"classes must be ints >= 0, got {cls!r}", value)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not weight >= 0
            or weight == float("inf")
        ):
            raise InvalidArgument(
                name,
                f"weights must be finite numbers >= 0, got {weight!r} for class {label}",
                value,
            )
    return dict(value) if isinstance(value, dict) else list(value)


def _callbacks(name, value):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        value = [value]
    for i, hook in enumerate(value):
        if not any(callable(getattr(hook, method, None)) for method in HOOKS):
            raise InvalidArgument(
                name,
                f"item {i}: a callback must have at least one of the methods "
                f"{', '.join(HOOKS)}, got {hook!r}",
                hook,
            )
    return list(value)


@dataclass(frozen=True)
class Option:
    """One trainer option: its default, its check and what it does."""

    default: object
    check: object
    doc: str


OPTIONS = {
    "batch_size": Option(32, _positive_int, "examples per update"),
    "shuffle": Option(True, _bool, "shuffle the training examples each epoch"),
    "seed": Option(0, _seed, "seed of shuffling and of noise/dropout without their own seed"),
    "epoch_size": Option(
        None,
        lambda n, v: _positive_int(n, v, True),
        "batches per epoch for callable or iterable training data",
    ),
    "max_updates": Option(
        None, lambda n, v: _positive_int(n, v, True), "stop after this many updates"
    ),
    "max_epochs": Option(
        None, lambda n, v: _positive_int(n, v, True), "stop after this many epochs"
    ),
    "validate_every": Option(
        None,
        lambda n, v: _positive_int(n, v, True),
        "updates between validations (default: once per epoch)",
    ),
    "patience": Option(
        5,
        lambda n, v: _non_negative_int(n, v) if v is not None else None,
        "validations without improvement before stopping (None: never stop early)",
    ),
    "min_improvement": Option(
        0.0,
        _non_negative_float,
        "relative decrease of the validation loss that counts as an improvement",
    ),
    "restore_best": Option(True, _bool, "end with the best validated parameters"),
    "lr_schedule": Option(None, _anything, "learning-rate schedule: name, dict or Schedule"),
    "lr_warmup": Option(0, _non_negative_int, "updates of linear learning-rate warmup"),
    "monitors": Option(None, _anything, "statistics of named outputs: {pattern: stats}"),
    "monitor_gradients": Option(False, _bool, "report gradient norms"),
    "nan_policy": Option(
        "raise",
        _choice("raise", "skip", "stop"),
        "on a non-finite loss or gradient: raise, skip the update, or stop",
    ),
    "save_progress": Option(None, _path, "checkpoint file, written atomically"),
    "save_every": Option(None, parse_every, "checkpoint every N updates, or '90s'/'10m'/'1h'"),
    "resume": Option(None, _path, "checkpoint file to continue from"),
    "run_dir": Option(None, _path, "directory for the metrics file"),
    "metrics_format": Option("csv", _choice("csv", "jsonl"), "metrics file format in run_dir"),
    "ema": Option(
        None,
        _fraction,
        "decay of an exponential moving average of the parameters, which validation, "
        "restore_best and the trained network use (None: no average)",
    ),
    "keep_best": Option(
        None,
        lambda n, v: _positive_int(n, v, True),
        "keep the k best validated models as run_dir/best-<step>.npz",
    ),
    "loggers": Option(
        None,
        check_loggers,
        "where metrics go: 'csv', 'jsonl', 'tensorboard', 'mlflow' or objects with "
        "log_metrics(step, metrics) (None: ['csv'], the metrics_format file)",
    ),
    "progress": Option("auto", _progress, "progress bar: True, False, or 'auto' (on a terminal)"),
    "log": Option(True, _bool, "a log line per validation on stderr"),
    "callbacks": Option(
        None, _callbacks, "objects with on_start/on_update/on_validation/on_end hooks"
    ),
    "mode": Option(None, _mode, "PyTensor mode, e.g. 'JAX' (None: PyTensor's default)"),
    "valid_fraction": Option(
        None,
        _fraction,
        "share of array training data held out for validation when valid is None",
    ),
    "threads": Option(
        None, lambda n, v: _positive_int(n, v, True), "BLAS/OpenMP/Numba threads while training"
    ),
    "accumulate": Option(
        1, _positive_int, "batches whose gradients make one update (gradient accumulation)"
    ),
    "split_update": Option(
        None,
        _optional_bool,
        "compile the update as two functions, gradients then apply (None: when accumulate > 1)",
    ),
    "class_weight": Option(
        None,
        _class_weight,
        "Classifier: loss weight per class, a list or {class: weight} "
        "(torch's CrossEntropyLoss(weight=)); multiplies sample weights",
    ),
    "data_parallel": Option(
        None,
        _data_parallel,
        "train on every process of a group, each on its shard of every batch: 'mpi' "
        "(run under mpiexec), a Communicator, or None",
    ),
}

#: the keyword names the assembly step leaves for the trainer
TRAINER_OPTIONS = tuple(OPTIONS)


def parse(kwargs):
    """Check trainer options and fill in defaults; returns a namespace."""
    for name in kwargs:
        if name not in OPTIONS:
            raise UnknownArgument(
                name,
                f"unknown trainer option; choose from {listing(sorted(OPTIONS))}"
                f"{closest_hint(name, OPTIONS)}",
                kwargs[name],
                sorted(OPTIONS),
                closest(name, OPTIONS),
            )
    values = {}
    for name, option in OPTIONS.items():
        value = kwargs.get(name, option.default)
        values[name] = option.check(name, value)
    if values["save_every"] is not None and values["save_progress"] is None:
        raise InvalidArgument(
            "save_every",
            f"needs save_progress, the checkpoint file to write; got "
            f"save_every={kwargs['save_every']!r} and save_progress=None",
            kwargs["save_every"],
        )
    for name in ("save_progress", "run_dir"):
        path = values[name]
        folder = path if name == "run_dir" else os.path.dirname(os.fspath(path or "")) or "."
        if path is not None and name == "save_progress" and not os.path.isdir(folder):
            raise InvalidArgument(
                name, f"the folder {folder!r} does not exist (for {os.fspath(path)!r})", path
            )
        if path is not None and name == "save_progress" and os.path.isdir(path):
            raise InvalidArgument(
                name, f"{os.fspath(path)!r} is a directory; give the checkpoint file's path", path
            )
    if values["accumulate"] > 1 and values["split_update"] is False:
        raise InvalidArgument(
            "split_update",
            f"accumulate={values['accumulate']} needs the split update; leave split_update "
            f"as None (it follows accumulate) or set it to True",
            False,
        )
    if values["split_update"] is None:
        values["split_update"] = values["accumulate"] > 1
    resolve_loggers(values, kwargs.get("loggers"))
    if values["keep_best"] is not None and values["run_dir"] is None:
        raise InvalidArgument(
            "keep_best",
            f"writes best-<step>.npz into the run directory; set run_dir, got "
            f"keep_best={values['keep_best']!r} with run_dir=None",
            values["keep_best"],
        )
    return SimpleNamespace(**values)
