"""Error-message helpers shared by every component that validates names.

Every message has one shape: what was wrong, the value given, what is
allowed, and the closest valid choice when there is one.

>>> closest("weight_l22", ["weight_l2", "weight_l1", "hidden_l2"])
['weight_l2', 'weight_l1']
>>> unknown("algo", "adamm", ["adam", "sgd", "adamax"], kind="algorithm")
"algo: unknown algorithm 'adamm'; choose from adam, adamax, sgd (closest: adam)"
"""

import difflib

__all__ = [
    "ArgumentError",
    "InvalidArgument",
    "UnknownArgument",
    "closest",
    "closest_hint",
    "listing",
    "unknown",
]

_NOTHING = object()


class ArgumentError(Exception):
    """A bad argument, as data: which argument, the value, what is allowed, the closest.

    Its text is ``'{argument}: {problem}'``; a front end (the command line)
    reads the fields instead of parsing the text, e.g. to say
    ``run.toml: training.learning_rate`` where Python says ``learning_rate``.

    Parameters
    ----------
    argument : str
        The keyword, option or config key the problem is about.
    problem : str
        What is wrong, what is allowed and the closest valid choice, in words.
    value : object, optional
        The value given.
    allowed : sequence of str, optional
        The valid choices, when they are a list of names.
    closest : sequence of str
        The valid choices that look most like ``value`` (best first).

    Examples
    --------
    >>> error = InvalidArgument("beta1", "must be in [0, 1), got 1.5", value=1.5)
    >>> str(error), error.argument, isinstance(error, ValueError)
    ('beta1: must be in [0, 1), got 1.5', 'beta1', True)
    """

    def __init__(self, argument, problem, value=_NOTHING, allowed=None, closest=()):
        self.argument = str(argument)
        self.problem = problem
        self.value = None if value is _NOTHING else value
        self.allowed = None if allowed is None else list(allowed)
        self.closest = list(closest)
        super().__init__(f"{self.argument}: {problem}")

    def __reduce__(self):  # picklable despite the keyword-only fields
        return (
            _rebuild,
            (type(self), self.argument, self.problem, self.value, self.allowed, self.closest),
        )


def _rebuild(cls, argument, problem, value, allowed, closest_):
    return cls(argument, problem, value, allowed, closest_)


class InvalidArgument(ArgumentError, ValueError):
    """A known argument with a bad value (a ``ValueError``)."""


class UnknownArgument(ArgumentError, TypeError):
    """An argument nobody takes, or one of the wrong kind (a ``TypeError``)."""


def closest(value, choices, n=3, cutoff=0.6, spread=0.15):
    """Return up to ``n`` entries of ``choices`` that look most like ``value``.

    Parameters
    ----------
    value : str
        The name the user gave.
    choices : iterable of str
        The valid names.
    n : int
        The most suggestions to return.
    cutoff : float
        ``difflib`` similarity ratio in [0, 1] below which a choice is not
        suggested.
    spread : float
        Only choices within this ratio of the best match are suggested, so a
        clear winner is not diluted by distant look-alikes.

    Returns
    -------
    list of str
        Best match first; empty when nothing is close.
    """
    value = str(value)
    scored = []
    for choice in dict.fromkeys(str(c) for c in choices):
        matcher = difflib.SequenceMatcher(None, value, choice)
        if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff:
            ratio = matcher.ratio()
            if ratio >= cutoff:
                scored.append((ratio, choice))
    scored.sort(key=lambda item: -item[0])
    if not scored:
        return []
    best = scored[0][0]
    return [choice for ratio, choice in scored[:n] if ratio >= best - spread]


def closest_hint(value, choices, **kwargs):
    """``' (closest: a, b)'`` for the end of a message, or ``''`` when nothing is close.

    >>> closest_hint("adamm", ["adam", "sgd"]), closest_hint("xyz", ["adam"])
    (' (closest: adam)', '')
    """
    near = closest(value, choices, **kwargs)
    return f" (closest: {', '.join(near)})" if near else ""


def listing(choices, limit=40):
    """Comma-separated ``choices``, shortened to ``limit`` entries."""
    choices = [str(c) for c in choices]
    if len(choices) <= limit:
        return ", ".join(choices)
    return ", ".join(choices[:limit]) + f", ... ({len(choices) - limit} more)"


def unknown(argument, value, choices, kind="name", sort=True):
    """Message for ``value`` not being one of ``choices``.

    Parameters
    ----------
    argument : str
        The argument (or keyword, or config key) the value was given for.
    value : str
        The value given.
    choices : iterable of str
        What is allowed.
    kind : str
        What a choice is ("algorithm", "regularizer", "output", ...).
    sort : bool
        Whether to list ``choices`` sorted (True) or in the order given.
    """
    choices = list(choices)
    shown = sorted(choices) if sort else choices
    hint = closest_hint(value, choices)
    return f"{argument}: unknown {kind} {value!r}; choose from {listing(shown)}{hint}"
