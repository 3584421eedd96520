"""The regularizer registry: names, build, and theanets-style keyword parsing."""

import inspect
import numbers
from collections import OrderedDict

from pytensor.graph.basic import Variable

from .base import Regularizer
from .errors import ArgumentError, InvalidArgument, UnknownArgument, closest_hint
from .registries import Registry

__all__ = ["register", "names", "canonical", "lookup", "build", "arguments", "from_kwargs"]

_REGULARIZERS = Registry(
    "regularizer", "regularizer", taken="register: the name {name!r} is already registered"
)
_MAPPING_FORM = set()  # names that also take theanets' {pattern: level} dict


def register(name, *aliases, pattern_mapping=False):
    """Class decorator that registers a Regularizer under ``name`` and aliases.

    Parameters
    ----------
    name : str
        The canonical name, also the keyword argument that enables it.
    *aliases : str
        Other names for the same regularizer (e.g. ``'weight_decay'``).
    pattern_mapping : bool
        Whether the keyword also accepts a ``{pattern: weight}`` dict that
        makes one regularizer per entry (theanets' ``noise=`` form).
    """

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise TypeError(f"register({name!r}): {cls!r} is not a Regularizer subclass")
        _REGULARIZERS.add(name, cls, *aliases)
        cls.name = name
        if pattern_mapping:
            _MAPPING_FORM.add(name)
        return cls

    return decorate


def names():
    """Every registered name, aliases included, sorted."""
    return _REGULARIZERS.names(aliases=True)


def canonical(name):
    """The canonical name for ``name`` (itself, or what an alias stands for)."""
    return _REGULARIZERS.canonical(name)


def aliases(name):
    """The aliases of a canonical name."""
    return [alias for alias, target in _REGULARIZERS.aliases.items() if target == name]


def lookup(name):
    """The class registered under ``name`` (alias or canonical)."""
    return _REGULARIZERS.lookup(name)


def arguments(name):
    """Constructor arguments of regularizer ``name``, mapped to their defaults.

    A required argument maps to ``inspect.Parameter.empty``.
    """
    params = inspect.signature(lookup(name).__init__).parameters
    return OrderedDict((k, p.default) for k, p in list(params.items())[1:])


def build(name, **kwargs):
    """Make the regularizer registered as ``name`` from its arguments.

    Examples
    --------
    >>> build("weight_decay", weight=1e-4, pattern="hid*.w")
    weight_l2(weight=0.0001, pattern='hid*.w')
    >>> build("weight_l2", wieght=1e-4)
    Traceback (most recent call last):
    ...
    TypeError: weight_l2: unknown argument 'wieght'; weight_l2 takes weight, pattern (closest: weight)
    """
    cls = lookup(name)
    allowed = arguments(name)
    for key in kwargs:
        if key not in allowed:
            hint = closest_hint(key, allowed)
            raise TypeError(
                f"{name}: unknown argument {key!r}; {cls.name} takes {', '.join(allowed)}{hint}"
            )
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise TypeError(f"{name}: {', '.join(missing)} is required")
    reg = cls.__new__(cls)
    reg.label = name
    reg.__init__(**kwargs)
    return reg


def _is_scalar(value):
    if isinstance(value, Variable):
        return value.ndim == 0
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _off(value):
    return value is None or (
        not isinstance(value, (Variable, bool)) and isinstance(value, numbers.Real) and value == 0
    )


def from_kwargs(**kwargs):
    """Turn theanets-style keyword arguments into a list of regularizers.

    For each keyword that is a registered name: a scalar is the weight; a dict
    holds the constructor's arguments (``dict(weight=0.1, pattern='hid1:out')``);
    for ``noise`` and ``dropout``, a dict whose keys are not argument names is a
    ``{pattern: weight}`` mapping that makes one regularizer per entry. ``None``
    or ``0`` turns a regularizer off. Keywords that are not regularizer names
    are ignored (the assembly step rejects the ones nobody claims).

    Examples
    --------
    >>> from_kwargs(weight_l2=1e-4, noise={"hid[12]:out": 0.1, "in:out": 0.01},
    ...             learning_rate=0.1, hidden_l1=0)
    [weight_l2(weight=0.0001, pattern=None), noise(weight=0.1, pattern='hid[12]:out', seed=None),
     noise(weight=0.01, pattern='in:out', seed=None)]
    """
    made = []
    seen = {}
    for key, value in kwargs.items():
        try:
            made += _from_keyword(key, value, seen)
        except ArgumentError:
            raise
        except (TypeError, ValueError) as error:
            # one place turns a regularizer's own complaint into an error about the keyword
            message = str(error)
            for prefix in (f"{key}: ", f"{canonical(key)}: "):
                if message.startswith(prefix):
                    message = message[len(prefix) :]
                    break
            kind = UnknownArgument if isinstance(error, TypeError) else InvalidArgument
            raise kind(key, message, value) from None
    return made


def _from_keyword(key, value, seen):
    """The regularizers one keyword makes (none for a keyword that is not one)."""
    made = []
    if key not in _REGULARIZERS:
        return []
    name = canonical(key)
    if name in seen:
        raise TypeError(
            f"{key}: {seen[name]} and {key} name the same regularizer ({name}); give one"
        )
    seen[name] = key
    if _off(value):
        return []
    if _is_scalar(value):
        made.append(build(key, weight=value))
    elif isinstance(value, dict):
        allowed = arguments(key)
        if name in _MAPPING_FORM and value and not any(k in allowed for k in value):
            for pattern, weight in value.items():
                made.append(build(key, weight=weight, pattern=pattern))
        else:
            made.append(build(key, **value))
    elif isinstance(value, Regularizer):
        if value.name != name:
            raise TypeError(f"{key}: got a {value.name} regularizer; expected a {name}")
        made.append(value)
    else:
        mapping = " or a {pattern: weight} dict" if name in _MAPPING_FORM else ""
        raise TypeError(
            f"{key}: expected a number, a dict of {name}'s arguments "
            f"({', '.join(arguments(key))}){mapping}, got {value!r}"
        )
    return made
