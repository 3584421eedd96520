"""Learning-rate schedules.

A schedule maps the number of the update about to be made (``step``,
0-based) to a learning rate. The trainer writes ``schedule.value(step)`` into
a shared learning-rate variable before each update, so changing the rate never
recompiles anything, and calls ``schedule.observe(loss)`` after each
validation (only ``plateau`` listens).

Every schedule composes with a linear warmup of ``W`` updates::

    value(step) = rate(0) * (step + 1) / W     for step < W
    value(step) = rate(step - W)               for step >= W

where ``rate(s)`` is the schedule's own formula. The schedule's clock starts
when warmup ends, so a decay begins after warmup rather than during it; the
one exception is ``cosine``, whose ``total_steps`` counts every update,
warmup included (see :class:`Cosine`). The warmup ramp is PyTorch's
``LinearLR(start_factor=1/W, end_factor=1, total_iters=W-1)``: the first
update uses ``rate(0) / W`` and update ``W - 1`` the full ``rate(0)``.

State (``plateau``'s best loss and counters) round-trips through
:meth:`Schedule.state` / :meth:`Schedule.set_state` as plain JSON, so a resumed
run sees bitwise the same rates; :meth:`Schedule.config` and
:func:`from_config` rebuild the schedule itself.

>>> from trainkit.training import schedules
>>> schedules.names()
['constant', 'cosine', 'exponential', 'plateau', 'step']
>>> s = schedules.build({"name": "step", "step_size": 2}, 0.1, warmup=2)
>>> [round(s.value(i), 6) for i in range(8)]
[0.05, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
>>> schedules.build("cosin", 0.1)
Traceback (most recent call last):
...
regularizers.errors.InvalidArgument: lr_schedule: unknown schedule 'cosin'; choose from constant, cosine, exponential, plateau, step (closest: cosine)
"""  # noqa: E501

import inspect
from collections.abc import Mapping

from regularizers.errors import InvalidArgument, UnknownArgument, closest_hint, listing

from .base import (
    COMMON,
    Constant,
    Schedule,
    arguments,
    check_count,
    check_real,
    lookup,
    names,
    register,
)
from .decays import Cosine, Exponential, Plateau, Step

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "Plateau",
    "Schedule",
    "Step",
    "build",
    "from_config",
    "names",
    "register",
]


def _check_keys(argument, name, given, allowed):
    for key in given:
        if key in COMMON:
            raise UnknownArgument(
                argument,
                f"{key!r} is a training option, not a schedule argument; "
                f"{name} takes {listing(allowed) or 'no arguments'}",
            )
        if key not in allowed:
            hint = closest_hint(key, allowed, cutoff=0.6)  # few choices: suggest more freely
            takes = listing(allowed) or "no arguments"
            raise UnknownArgument(argument, f"{name} takes {takes}; got {key!r}{hint}")


def build(spec, learning_rate, warmup=0, total_steps=None, argument="lr_schedule"):
    """Make a schedule from a user's specification.

    Parameters
    ----------
    spec : None, str, dict or Schedule
        ``None`` (constant rate); a name from :func:`names`; a dict with a
        ``'name'`` and that schedule's arguments, e.g.
        ``{'name': 'cosine', 'min_lr': 1e-5}``; or a :class:`Schedule`, which
        is returned as it is (its own learning rate and warmup apply, and
        the other arguments are ignored).
    learning_rate : float
        The base learning rate.
    warmup : int
        Linear-warmup updates (see the module docstring).
    total_steps : int or None
        The run's length in updates, if the trainer knows it; fills in
        ``total_steps`` for schedules that need it and were not given one.
    argument : str
        The option name that error messages start with.

    Raises
    ------
    ValueError
        Unknown name, or a value out of range.
    TypeError
        Unknown or missing argument, or a spec of the wrong type.

    >>> build({"name": "cosine", "min_lr": 1e-5}, 0.1, total_steps=1000)
    cosine(learning_rate=0.1, total_steps=1000, min_lr=1e-05, warmup=0)
    >>> build({"name": "cosine", "min_rate": 1e-5}, 0.1)
    Traceback (most recent call last):
    ...
    regularizers.errors.UnknownArgument: lr_schedule: cosine takes total_steps, min_lr; got 'min_rate' (closest: min_lr)
    """
    if isinstance(spec, Schedule):
        return spec
    if spec is None:
        spec = "constant"
    if isinstance(spec, str):
        name, args = spec, {}
    elif isinstance(spec, Mapping):
        args = dict(spec)
        if "name" not in args:
            raise UnknownArgument(
                argument, f"a schedule dict needs a 'name' ({listing(names())}); got {dict(spec)!r}"
            )
        name = args.pop("name")
    else:
        raise UnknownArgument(
            argument,
            f"expected None, a schedule name ({listing(names())}), a dict with a "
            f"'name', or a Schedule; got {spec!r}",
        )
    cls = lookup(name, argument)
    allowed = arguments(cls)
    _check_keys(argument, name, args, allowed)
    if "total_steps" in allowed and "total_steps" not in args and total_steps is not None:
        args["total_steps"] = total_steps
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in args]
    if missing == ["total_steps"]:
        raise UnknownArgument(
            argument,
            f"{name} needs total_steps, the number of updates (warmup included), "
            f"and the training length is not known; give the schedule its total_steps, or "
            f"set max_updates or max_epochs",
        )
    if missing:
        raise UnknownArgument(
            argument,
            f"{name} needs {' and '.join(missing)}; give the schedule as a table "
            f"(dict) with name {name!r} and {', '.join(missing)}",
        )
    check_real("", "learning_rate:", learning_rate, low=0)
    check_count("", "lr_warmup:", warmup, 0)
    try:
        return cls(learning_rate, warmup=warmup, **args)
    except (TypeError, ValueError) as error:
        kind = InvalidArgument if isinstance(error, ValueError) else UnknownArgument
        raise kind(argument, str(error)) from None


def from_config(config):
    """Rebuild a schedule from :meth:`Schedule.config` (state is separate).

    >>> s = Step(0.1, step_size=10, warmup=5)
    >>> s.config()
    {'name': 'step', 'learning_rate': 0.1, 'step_size': 10, 'gamma': 0.1, 'warmup': 5}
    >>> from_config(s.config())
    step(learning_rate=0.1, step_size=10, gamma=0.1, warmup=5)
    """
    if not isinstance(config, Mapping) or "name" not in config:
        raise TypeError(f"from_config: expected a dict with a 'name'; got {config!r}")
    args = dict(config)
    cls = lookup(args.pop("name"), "from_config")
    allowed = arguments(cls)
    extra = [k for k in args if k not in allowed and k not in COMMON]
    if extra:
        _check_keys("from_config", cls.name, extra, allowed)
    return cls(**args)
