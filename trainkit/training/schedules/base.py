"""The schedule base class, its registry and the checks of its arguments.

:class:`Schedule` gives every schedule its linear warmup, its
``state()``/``set_state()`` and its ``config()``; :func:`register` files a
subclass under a name (:func:`names`, :func:`lookup`); :func:`check_real` and
:func:`check_count` check a schedule's numbers. ``constant`` is here; the
decaying schedules are in :mod:`~trainkit.training.schedules.decays`.
"""

import abc
import inspect
import math
import numbers
import operator

from regularizers.registries import Registry

__all__ = [
    "COMMON",
    "Constant",
    "Schedule",
    "arguments",
    "check_count",
    "check_real",
    "lookup",
    "names",
    "register",
]

_SCHEDULES = Registry("schedule", "lr_schedule")
#: the arguments every schedule takes (not its own)
COMMON = ("learning_rate", "warmup")


def register(name):
    """Class decorator: register a :class:`Schedule` subclass under ``name``."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Schedule)):
            raise TypeError(f"register({name!r}): {cls!r} is not a Schedule subclass")
        _SCHEDULES.add(name, cls)
        cls.name = name
        return cls

    return decorate


def names():
    """Sorted names of the registered schedules."""
    return _SCHEDULES.names()


def lookup(name, argument):
    """The schedule class registered as ``name``; else one InvalidArgument against ``argument``."""
    return _SCHEDULES.lookup(name, argument)


def arguments(cls):
    """The schedule's own arguments (name -> default), without the common ones."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params if p.name not in COMMON}


def check_real(where, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float, checked against [low, high] (open ends if asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}{name} must be a number; got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if math.isnan(value) or math.isinf(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{where}{name} must be in {left}{lo}, {hi}{right}; got {value!r}")
    return value


def check_count(where, name, value, minimum):
    """``value`` as an int >= ``minimum`` (integral floats such as 1e3 accepted)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral) or float(value).is_integer():
            if value >= minimum:
                return int(value)
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ValueError(f"{where}{name} must be {kind}; got {value!r}")


class Schedule(abc.ABC):
    """Base class: a learning rate for each update, plus linear warmup.

    Subclasses implement :meth:`rate` (the rate at step ``s`` of their own
    clock, which starts after warmup) and, if they keep state, :meth:`observe`,
    :meth:`state` and :meth:`set_state`. Their constructor arguments after
    ``learning_rate`` are what :meth:`config` reports and :func:`build`
    accepts, and each is stored as an attribute of the same name.

    Parameters
    ----------
    learning_rate : float
        The base learning rate, >= 0.
    warmup : int
        Number of linear-warmup updates ``W`` (0: none).
    """

    name = None

    def __init__(self, learning_rate, *, warmup=0):
        where = f"{self.name}: "
        self.learning_rate = check_real(where, "learning_rate", learning_rate, low=0)
        self.warmup = check_count(where, "warmup", warmup, 0)

    @abc.abstractmethod
    def rate(self, step):
        """The rate at step ``step`` of the schedule's own clock (no warmup)."""

    def value(self, step):
        """The learning rate for update number ``step`` (0-based), warmup included."""
        step = operator.index(step)
        if step < 0:
            raise ValueError(f"{self.name}: step must be >= 0; got {step}")
        if step < self.warmup:
            return self.rate(0) * (step + 1) / self.warmup
        return self.rate(step - self.warmup)

    def observe(self, metric):
        """Record a validation loss; only ``plateau`` uses it, the others ignore it."""
        return None

    def state(self):
        """JSON-serialisable mutable state ({} for stateless schedules)."""
        return {}

    def set_state(self, state):
        """Restore what :meth:`state` returned."""
        if state:
            raise ValueError(f"{self.name}: takes no state; got {state!r}")

    def config(self):
        """Dict that :func:`from_config` turns back into an equal schedule."""
        args = {key: getattr(self, key) for key in arguments(type(self))}
        return {
            "name": self.name,
            "learning_rate": self.learning_rate,
            **args,
            "warmup": self.warmup,
        }

    def __repr__(self):
        config = self.config()
        name = config.pop("name")
        return f"{name}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


@register("constant")
class Constant(Schedule):
    """The same rate for every update: ``lr``.

    PyTorch: no scheduler; Keras: a float learning rate.

    >>> Constant(0.01).value(1000)
    0.01
    """

    def rate(self, step):
        return self.learning_rate
