"""Where batches come from: arrays, a batch-making callable, or an iterable of batches.

Each source is a small class that knows how to draw its batches and how to
replay itself to a saved position; :class:`~trainkit.data.dataset.Dataset`
keeps the position (epoch, batch) and picks the source with
:func:`source_for`:

- :class:`ArraySource`: a list of arrays with one length (``np.memmap``
  included, read batch by batch), or nested Python lists, which become arrays;
- :class:`CallableSource`: a callable returning one batch per call (needs
  ``epoch_size``; never runs out);
- :class:`IterableSource`: a list of batches, a re-iterable, or a one-shot
  iterator (a generator), whose last batch ends training.
"""

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from regularizers.errors import InvalidArgument, UnknownArgument

from .arrays import _basic_check, _take, check_arrays

__all__ = ["ArraySource", "CallableSource", "IterableSource", "source_for"]

_END = object()


def _cast(arrays, specs):
    if specs is None:
        return list(arrays)
    return [np.asarray(a, dtype=s.dtype) for a, s in zip(arrays, specs, strict=False)]


def _prepare(batch, specs, argument):
    """Check and cast one batch from a callable or an iterable."""
    if isinstance(batch, np.ndarray):
        batch = [batch]
    if not isinstance(batch, list | tuple):
        raise UnknownArgument(
            argument,
            f"expected a list or tuple of arrays, or one array; got {type(batch).__name__}",
        )
    if specs is None:
        return _basic_check(batch, argument)
    return _cast(check_arrays(list(batch), specs, argument=argument), specs)


def _is_nested_numbers(item, depth=0):
    """Whether ``item`` is a (nested) Python list of numbers: array data, not a batch."""
    if isinstance(item, numbers.Number) and not isinstance(item, bool):
        return True
    if isinstance(item, list | tuple) and item and depth < 8:
        return _is_nested_numbers(item[0], depth + 1)
    return False


class ArraySource:
    """Arrays with one length, drawn in (optionally shuffled) batches.

    Epoch ``e`` uses ``np.random.default_rng([seed, e]).permutation(n)`` when
    shuffling, so a position is all a resume needs.
    """

    kind = "arrays"
    one_shot = False

    def __init__(self, arrays, specs, name, batch_size):
        self.specs = specs
        self.arrays = (
            check_arrays(list(arrays), specs, argument=name)
            if specs is not None
            else _basic_check(arrays, name)
        )
        self.n_examples = len(self.arrays[0])
        self.batches_per_epoch = math.ceil(self.n_examples / batch_size)
        self._perm = (None, None)

    def batch(self, seed, epoch, index, batch_size, shuffle):
        start, stop = index * batch_size, min((index + 1) * batch_size, self.n_examples)
        rows = slice(start, stop)
        if shuffle:
            if self._perm[0] != (seed, epoch):
                rng = np.random.default_rng([seed, epoch])
                self._perm = ((seed, epoch), rng.permutation(self.n_examples))
            rows = self._perm[1][start:stop]
        return _cast([_take(a, rows) for a in self.arrays], self.specs)

    def draw(self, data):
        batch = self.batch(data.seed, data.epoch, data.batch_index, data.batch_size, data.shuffle)
        return batch, False

    def walk(self, data, batch_size):
        for index in range(math.ceil(self.n_examples / batch_size)):
            yield self.batch(None, None, index, batch_size, shuffle=False)

    def restore(self, data, state):
        if state["batch_index"] >= self.batches_per_epoch:
            raise ValueError(
                f"state: batch_index {state['batch_index']} is past the end of an epoch "
                f"({self.batches_per_epoch} batches)"
            )


class CallableSource:
    """A callable returning one batch per call; ``epoch_size`` calls make an epoch."""

    kind = "callable"
    one_shot = False
    arrays = None
    n_examples = None

    def __init__(self, function, specs, name, epoch_size):
        if epoch_size is None:
            raise InvalidArgument(
                "epoch_size", "a callable source needs the number of batches per epoch, got None"
            )
        self.function, self.specs, self.name = function, specs, name
        self.batches_per_epoch = epoch_size
        self.calls = 0

    def _call(self, index):
        self.calls += 1
        return _prepare(self.function(), self.specs, f"{self.name} batch {index}")

    def draw(self, data):
        return self._call(data.drawn), False

    def walk(self, data, batch_size):
        for index in range(self.batches_per_epoch):
            yield self._call(index)

    def restore(self, data, state):
        if state["calls"] < self.calls:
            raise ValueError(
                f"state: the callable was called {state['calls']} times when saved and "
                f"{self.calls} times here; a callable cannot be rewound"
            )
        for _ in range(state["calls"] - self.calls):
            self.function()
        self.calls = state["calls"]


class IterableSource:
    """A list of batches, a re-iterable (one pass is an epoch) or a one-shot iterator."""

    kind = "iterable"
    arrays = None
    n_examples = None

    def __init__(self, iterable, specs, name, epoch_size):
        self.iterable, self.specs, self.name = iterable, specs, name
        self.one_shot = isinstance(iterable, Iterator)
        self.epoch_size = epoch_size
        if epoch_size is None and isinstance(iterable, list | tuple):
            self.batches_per_epoch = len(iterable)
        else:
            self.batches_per_epoch = epoch_size
        self.exhausted = False
        self._iter = self._pending = None
        self.position = 0

    def draw(self, data):
        """Next batch, looking one ahead to see where a pass ends."""
        if self._pending is None:
            if self._iter is None:
                self._iter, self.position = iter(self.iterable), 0
            self._pending = next(self._iter, _END)
            if self._pending is _END:
                raise ValueError(
                    f"{self.name}: the iterable gave no batch after {self.position}; "
                    f"expected at least one batch per pass"
                )
        batch, self.position = self._pending, self.position + 1
        self._pending = next(self._iter, _END)
        ended = self._pending is _END
        if ended and self.one_shot:
            self.exhausted = True
        elif ended:
            if self.epoch_size is None:
                self.batches_per_epoch = self.position
            self._iter = self._pending = None
            self.position = 0
        return _prepare(batch, self.specs, f"{self.name} batch {data.drawn}"), ended

    def walk(self, data, batch_size):
        for index, batch in enumerate(self.iterable):
            if self.epoch_size is not None and index == self.epoch_size:
                break
            yield _prepare(batch, self.specs, f"{self.name} batch {index}")

    def restore(self, data, state):
        if self.one_shot:
            here = (data.drawn, self.position, self.exhausted)
            if (state["drawn"], state["iter_position"], state["exhausted"]) != here:
                raise ValueError(
                    f"state: a one-shot iterator cannot be moved to batch {state['drawn']}; it is "
                    f"at batch {data.drawn}. Pass a list, a re-iterable or a callable to resume"
                )
            return
        self._iter, self._pending, self.position = iter(self.iterable), None, 0
        for _ in range(state["iter_position"]):
            if next(self._iter, _END) is _END:
                raise ValueError(
                    f"state: position {state['iter_position']} is past the end of the "
                    f"iterable ({self.position} batches)"
                )
            self.position += 1
        if self.batches_per_epoch is None:
            self.batches_per_epoch = state["batches_per_epoch"]


def source_for(source, specs, name, batch_size, epoch_size):
    """The source class that serves ``source`` (see the module docstring)."""
    if isinstance(source, np.ndarray):
        source = [source]
    if isinstance(source, list | tuple) and not source:
        raise InvalidArgument(name, f"got an empty {type(source).__name__}; expected [x, y, ...]")
    if isinstance(source, list | tuple) and all(
        isinstance(a, np.ndarray) or _is_nested_numbers(a) for a in source
    ):
        if epoch_size is not None:
            raise InvalidArgument(
                "epoch_size",
                f"only for a callable or iterable source; an epoch over arrays is one pass "
                f"over them, got epoch_size={epoch_size}",
                epoch_size,
            )
        return ArraySource(
            [a if isinstance(a, np.ndarray) else np.asarray(a) for a in source],
            specs,
            name,
            batch_size,
        )
    if isinstance(source, list | tuple):
        if not all(isinstance(b, list | tuple) for b in source):
            kinds = sorted({type(item).__name__ for item in source})
            raise UnknownArgument(
                name,
                f"a {type(source).__name__} source holds arrays [x, y, ...] or "
                f"batches (lists of arrays); got items of types {', '.join(kinds)}",
            )
        return IterableSource(source, specs, name, epoch_size)
    if callable(source):
        return CallableSource(source, specs, name, epoch_size)
    if isinstance(source, Iterable) and not isinstance(source, str | bytes | Mapping):
        return IterableSource(source, specs, name, epoch_size)
    raise UnknownArgument(
        name,
        f"expected a list of arrays [x, y, ...], a callable returning batches or "
        f"an iterable of batches; got {type(source).__name__}",
    )
