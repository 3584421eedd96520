"""Glob patterns over output and parameter names, compiled to predicates."""

import fnmatch
import re

from .errors import InvalidArgument, closest, closest_hint

__all__ = ["Pattern"]


class Pattern:
    """A shell-style glob, or several, that selects names.

    Output names look like ``'hid1:out'`` and parameter names like
    ``'hid1.w'``; ``fnmatch`` syntax applies (``*``, ``?``, ``[12]``), and is
    case-sensitive. A pattern is a value: it can be called on one name,
    compared, and used to select from a list of names.

    Parameters
    ----------
    globs : str or sequence of str
        One glob or a list/tuple of them; a name matches when any glob does.
    owner : str
        Who the pattern belongs to (a regularizer name), for error messages.

    Examples
    --------
    >>> p = Pattern(["hid[12]:out", "out:*"], owner="hidden_l1")
    >>> p("hid2:out"), p("hid3:out")
    (True, False)
    >>> p.select(["in:out", "hid1:out", "hid2:out", "out:pre", "out:out", "hid1:out"], "output")
    ['hid1:out', 'hid2:out', 'out:pre', 'out:out']
    >>> Pattern("hid3:out", owner="recurrent_norm").select(["in:out", "hid1:out"], "output")
    Traceback (most recent call last):
    ...
    regularizers.errors.InvalidArgument: recurrent_norm: pattern 'hid3:out' matches no output; outputs are in:out, hid1:out (closest: hid1:out)
    """

    def __init__(self, globs, owner="pattern"):
        if isinstance(globs, str):
            globs = (globs,)
        elif isinstance(globs, (list, tuple)) and globs and all(isinstance(g, str) for g in globs):
            globs = tuple(globs)
        else:
            raise TypeError(
                f"{owner}: pattern must be a glob string or a non-empty list of them, got {globs!r}"
            )
        self.globs = globs
        self.owner = owner
        self._regexes = tuple(re.compile(fnmatch.translate(g)) for g in globs)

    def __call__(self, name):
        return any(r.match(name) for r in self._regexes)

    def __eq__(self, other):
        return isinstance(other, Pattern) and self.globs == other.globs

    def __hash__(self):
        return hash(self.globs)

    def __repr__(self):
        return f"Pattern({self.spec!r})"

    @property
    def spec(self):
        """The pattern as the user writes it: a string, or a list of strings."""
        return self.globs[0] if len(self.globs) == 1 else list(self.globs)

    def select(self, names, kind):
        """Names that match, in the order given, without repeats.

        Every glob must match at least one name: a glob that matches nothing
        is almost always a typo, so it raises ``ValueError`` listing the names
        of this ``kind`` that exist and the closest ones.
        """
        names = list(dict.fromkeys(names))
        for glob, regex in zip(self.globs, self._regexes, strict=True):
            if not any(regex.match(n) for n in names):
                hint = closest_hint(glob, names)
                where = f" (in {list(self.globs)!r})" if len(self.globs) > 1 else ""
                available = ", ".join(names) if names else "none"
                raise InvalidArgument(
                    self.owner,
                    f"pattern {glob!r}{where} matches no {kind}; {kind}s are {available}{hint}",
                    glob,
                    names,
                    closest(glob, names),
                )
        return [n for n in names if self(n)]
