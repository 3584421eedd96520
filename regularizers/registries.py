"""One registry shape for every kind of named thing: a plain dict, a decorator, one error.

trainkit keeps regularizers, optimizers, learning-rate schedules, layer
forms, losses and activations by name. Each kind is a :class:`Registry`:
entries are added by the :meth:`Registry.register` decorator (or
:meth:`Registry.add`), names may have aliases, a name registered twice is a
``ValueError``, and an unknown name is one
:class:`~regularizers.errors.InvalidArgument` (argument, value, allowed,
closest) from :meth:`Registry.lookup`:

>>> shapes = Registry("shape", argument="shape")
>>> @shapes.register("square", "box")
... def square(side):
...     return side * side
>>> shapes.lookup("box")(3), shapes.names(), shapes.names(aliases=True)
(9, ['square'], ['box', 'square'])
>>> shapes.lookup("sqare")
Traceback (most recent call last):
...
regularizers.errors.InvalidArgument: shape: unknown shape 'sqare'; choose from box, square (closest: square)
>>> error = shapes.error("circle")
>>> error.argument, error.value, error.allowed, error.closest
('shape', 'circle', ['box', 'square'], [])
"""  # noqa: E501

from collections import OrderedDict

from .errors import InvalidArgument, closest, unknown

__all__ = ["Registry"]


class Registry:
    """Named entries of one ``kind``, in the order they were registered.

    Parameters
    ----------
    kind : str
        What an entry is, in messages ("algorithm", "regularizer", ...).
    argument : str
        The argument an unknown name is reported against (``algo``); a
        :meth:`lookup` may name another.
    taken : str
        The message for a name registered twice; ``{kind}`` and ``{name}``
        are filled in.
    """

    def __init__(self, kind, argument, taken="register: {kind} {name!r} is already registered"):
        self.kind, self.argument, self.taken = kind, argument, taken
        self.entries = OrderedDict()  # canonical name -> entry
        self.aliases = OrderedDict()  # alias -> canonical name

    def add(self, name, entry, *aliases):
        """Register ``entry`` under ``name`` and ``aliases``; returns ``entry``."""
        for key in (name, *aliases):
            if key in self.entries or key in self.aliases:
                raise ValueError(self.taken.format(kind=self.kind, name=key))
        self.entries[name] = entry
        for alias in aliases:
            self.aliases[alias] = name
        return entry

    def register(self, name, *aliases):
        """Decorator: :meth:`add` the decorated function or class under ``name``."""

        def decorate(entry):
            return self.add(name, entry, *aliases)

        return decorate

    def names(self, aliases=False):
        """The canonical names (and the aliases too if ``aliases``), sorted."""
        return sorted([*self.entries, *self.aliases] if aliases else self.entries)

    def canonical(self, name):
        """The canonical name for ``name`` (itself, or what an alias stands for)."""
        try:
            return self.aliases.get(name, name)
        except TypeError:  # an unhashable value is no name
            return name

    def __contains__(self, name):
        try:
            return self.canonical(name) in self.entries
        except TypeError:
            return False

    def error(self, name, argument=None, allowed=None):
        """The :class:`InvalidArgument` for ``name``, not one of ``allowed`` (default: all)."""
        argument = self.argument if argument is None else argument
        allowed = self.names(aliases=True) if allowed is None else list(allowed)
        text = unknown(argument, name, allowed, kind=self.kind)
        return InvalidArgument(
            argument,
            text[len(argument) + 2 :],
            name,
            allowed=sorted(allowed),
            closest=closest(name, allowed),
        )

    def lookup(self, name, argument=None, allowed=None):
        """The entry registered as ``name`` (or an alias of it); else :meth:`error`."""
        if name not in self:
            raise self.error(name, argument, allowed)
        return self.entries[self.canonical(name)]

    def copy(self):
        """A registry with the same entries (a test registers into a copy)."""
        other = Registry(self.kind, self.argument, self.taken)
        other.entries.update(self.entries)
        other.aliases.update(self.aliases)
        return other
