r"""Every training keyword parsed once, at the boundary, into a typed :class:`TrainingSpec`.

``net.train(...)``, ``Trainer(...)`` and a config file's ``[training]``
section all hand their keywords to :func:`parse`, and nothing else reads
them: :func:`~trainkit.training.assembly.assemble` takes the spec's
algorithm, hyperparameters and regularizers, the
:class:`~trainkit.Trainer` its options. A keyword that neither the optimizer,
a regularizer nor the trainer claims, and every bad value, is an
:class:`~regularizers.errors.ArgumentError` raised here, with one wording,
before any graph is touched.

>>> spec = parse("adam", learning_rate=0.01, weight_l2=1e-4, batch_size=64)
>>> spec.algo, spec.hyperparameters, spec.regularizers, spec.options.batch_size
('adam', {'learning_rate': 0.01}, (weight_l2(weight=0.0001, pattern=None),), 64)
>>> parse("adam", weight_l22=1e-4)
Traceback (most recent call last):
...
regularizers.errors.UnknownArgument: weight_l22: unknown keyword argument; it is not a hyperparameter of adam, a regularizer or a trainer option (closest: weight_l2, weight_l1)
>>> parse("adam", beta1=1.5)
Traceback (most recent call last):
...
regularizers.errors.InvalidArgument: beta1: must be in [0, 1), got 1.5
"""  # noqa: E501

import inspect
import math
import numbers
from dataclasses import dataclass
from types import SimpleNamespace

from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

import regularizers
from regularizers.errors import InvalidArgument, UnknownArgument, closest, closest_hint, listing

from .. import optimizers
from . import options as trainer_options
from . import schedules

__all__ = [
    "DEFAULT_ALGO",
    "DEFAULT_LEARNING_RATE",
    "HYPERPARAMETER_RANGES",
    "TrainingSpec",
    "check_hyperparameter",
    "parse",
]

#: the algorithm used when none is named (theanets' default)
DEFAULT_ALGO = "rmsprop"
#: the learning rate used when none is given, for every algorithm that has one
DEFAULT_LEARNING_RATE = 1e-3

#: hyperparameter name -> (low, high, low included, high included); numbers only,
#: a shared variable (a value a schedule rewrites) is the user's business
HYPERPARAMETER_RANGES = {
    "learning_rate": (0.0, math.inf, True, False),
    "beta1": (0.0, 1.0, True, False),
    "beta2": (0.0, 1.0, True, False),
    "rho": (0.0, 1.0, True, False),
    "momentum": (0.0, 1.0, True, False),
    "epsilon": (0.0, math.inf, True, False),
    "decoupled_decay": (0.0, math.inf, True, False),
    "momentum_decay": (0.0, math.inf, True, False),
    "rprop_increase": (1.0, math.inf, True, False),
    "rprop_decrease": (0.0, 1.0, False, True),
    "rprop_min_step": (0.0, math.inf, True, False),
    "rprop_max_step": (0.0, math.inf, False, False),
}


def _interval(low, high, low_in, high_in):
    if math.isinf(high):
        return f">= {low:g}" if low_in else f"> {low:g}"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check_hyperparameter(name, value):
    """``value`` as a float (or the shared variable given); InvalidArgument if it is bad.

    >>> check_hyperparameter("momentum", 0.9), check_hyperparameter("epsilon", 0)
    (0.9, 0.0)
    >>> check_hyperparameter("learning_rate", "fast")
    Traceback (most recent call last):
    ...
    regularizers.errors.InvalidArgument: learning_rate: must be a number >= 0 or a shared variable, got 'fast'
    """  # noqa: E501
    if isinstance(value, SharedVariable):
        if value.ndim != 0:
            raise InvalidArgument(name, f"a shared variable must be a scalar, got {value}", value)
        return value
    low, high, low_in, high_in = HYPERPARAMETER_RANGES.get(name, (-math.inf, math.inf, 0, 0))
    allowed = "a number" if math.isinf(low) else f"a number {_interval(low, high, low_in, high_in)}"
    if isinstance(value, Variable):
        raise InvalidArgument(
            name, f"must be {allowed} or a shared variable, got the symbolic {value}", value
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(name, f"must be {allowed} or a shared variable, got {value!r}", value)
    value = float(value)
    if not math.isfinite(value):
        raise InvalidArgument(name, f"must be a finite number, got {value!r}", value)
    if not math.isinf(low) and not (
        (low <= value if low_in else low < value) and (value <= high if high_in else value < high)
    ):
        raise InvalidArgument(
            name, f"must be {_interval(low, high, low_in, high_in)}, got {value!r}", value
        )
    return value


@dataclass(frozen=True)
class TrainingSpec:
    """One training run's keywords, parsed and checked.

    Attributes
    ----------
    algo : str
        The optimizer's registered name.
    hyperparameters : dict
        The optimizer's hyperparameters as given (floats, or shared variables),
        ``learning_rate`` filled in with :data:`DEFAULT_LEARNING_RATE` where the
        algorithm has one.
    regularizers : tuple of Regularizer
        Built from the regularizer keywords, in keyword order.
    options : SimpleNamespace
        Every trainer option (:data:`trainkit.training.options.OPTIONS`), defaults
        filled in.
    """

    algo: str
    hyperparameters: dict
    regularizers: tuple
    options: SimpleNamespace

    @property
    def learning_rate(self):
        """The learning rate (a float or a shared variable), or None if ``algo`` has none."""
        return self.hyperparameters.get("learning_rate")


def _owners(key):
    """Algorithms that have a hyperparameter called ``key``."""
    return [a for a in optimizers.names() if key in optimizers.hyperparameters(a)]


def parse(algo=None, *, trainer_options_allowed=None, implied_options=None, **kwargs):
    """Sort, check and build every training keyword; the one parse.

    Parameters
    ----------
    algo : str, optional
        Optimizer name (default :data:`DEFAULT_ALGO`).
    trainer_options_allowed : collection of str, optional
        The trainer options the caller accepts (default: all of them).
    implied_options : dict, optional
        Trainer options the caller sets itself (the command line's
        ``save_progress``), checked with the rest.
    **kwargs
        Optimizer hyperparameters, regularizers and trainer options.

    Returns
    -------
    TrainingSpec

    Raises
    ------
    UnknownArgument
        (a ``TypeError``) for a keyword nobody claims, naming the closest ones,
        or one that belongs to another optimizer.
    InvalidArgument
        (a ``ValueError``) for a bad value, naming the argument.
    """
    algo = DEFAULT_ALGO if algo is None else algo
    if not isinstance(algo, str) or algo not in optimizers.names():
        near = closest(algo, optimizers.names()) if isinstance(algo, str) else []
        hint = closest_hint(algo, optimizers.names()) if isinstance(algo, str) else ""
        raise InvalidArgument(
            "algo",
            f"unknown algorithm {algo!r}; choose from {listing(optimizers.names())}{hint}",
            algo,
            optimizers.names(),
            near,
        )
    allowed = optimizers.hyperparameters(algo)
    reg_names = set(regularizers.names())
    option_names = set(trainer_options.OPTIONS)
    if trainer_options_allowed is not None:
        option_names &= set(trainer_options_allowed)
    hyper, reg_kwargs, option_kwargs = {}, {}, {}
    for key, value in kwargs.items():
        if key in allowed:
            hyper[key] = check_hyperparameter(key, value)
        elif key in reg_names:
            reg_kwargs[key] = value
        elif key in option_names:
            option_kwargs[key] = value
        else:
            owners = _owners(key)
            if owners:
                raise UnknownArgument(
                    key,
                    f"not a hyperparameter of {algo} (it belongs to {listing(owners)}); "
                    f"{algo} takes {listing(allowed) or 'none'}",
                    value,
                    list(allowed),
                )
            valid = [*allowed, *sorted(reg_names), *sorted(option_names)]
            raise UnknownArgument(
                key,
                f"unknown keyword argument; it is not a hyperparameter of {algo}, "
                f"a regularizer or a trainer option{closest_hint(key, valid)}",
                value,
                valid,
                closest(key, valid),
            )
    if "learning_rate" in allowed and "learning_rate" not in hyper:
        hyper["learning_rate"] = DEFAULT_LEARNING_RATE
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in hyper]
    if missing:
        raise UnknownArgument(missing[0], f"{algo} needs {' and '.join(missing)}", None)
    regs = tuple(regularizers.from_kwargs(**reg_kwargs))
    options = trainer_options.parse({**option_kwargs, **(implied_options or {})})
    _check_schedule(algo, hyper, options, "learning_rate" in kwargs)
    return TrainingSpec(algo, hyper, regs, options)


def _check_schedule(algo, hyper, options, rate_given):
    """The learning-rate schedule and warmup, checked against the run's options."""
    scheduled = options.lr_schedule is not None or options.lr_warmup
    if not scheduled:
        return
    what = "lr_schedule" if options.lr_schedule is not None else "lr_warmup"
    given = options.lr_schedule if options.lr_schedule is not None else options.lr_warmup
    rate = hyper.get("learning_rate")
    if rate is None:
        raise UnknownArgument(what, f"{algo} has no learning_rate to schedule", given)
    if not optimizers.schedulable(algo):
        raise UnknownArgument(
            what,
            f"{algo} reads learning_rate once, as its initial step size, and then adapts its "
            f"own steps; a schedule would have no effect",
            given,
        )
    if isinstance(options.lr_schedule, schedules.Schedule):
        schedule = options.lr_schedule
        if options.lr_warmup:
            raise UnknownArgument(
                "lr_warmup",
                f"give the warmup to the Schedule object itself (it has warmup={schedule.warmup})",
                options.lr_warmup,
            )
        if rate_given and not isinstance(rate, SharedVariable):
            if schedule.learning_rate != rate:
                raise UnknownArgument(
                    "learning_rate",
                    f"{rate!r} disagrees with the Schedule object's "
                    f"learning_rate={schedule.learning_rate!r}; give it once",
                    rate,
                )
        return
    # the run's length is known only with the data; a placeholder checks the rest
    length = options.max_updates
    if length is None and options.max_epochs is not None:
        length = options.max_epochs * 10**6
    base = float(rate.get_value()) if isinstance(rate, SharedVariable) else rate
    schedules.build(
        options.lr_schedule, base, warmup=options.lr_warmup, total_steps=length, argument=what
    )
