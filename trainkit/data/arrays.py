"""Datasets and batching: checks before compiling, shuffled batches, exact resume.

A model states what it expects of each array as an :class:`ArraySpec`;
:func:`check_arrays` validates user data against those specs before anything
is compiled, and a :class:`Dataset` cuts batches from arrays (memory-mapped
``.npy`` files included), from a batch-making callable or from an iterable of
batches, casting each batch to the model's dtypes. A dataset's position is a
few integers (:meth:`Dataset.state`), so training resumes on exactly the
batches it would have seen.

>>> x = np.arange(20.0).reshape(10, 2)
>>> y = np.arange(10) % 3
>>> specs = [ArraySpec("x", ndim=2, features=2), ArraySpec("y", ndim=1, kind="int", low=0, high=2)]
>>> data = Dataset([x, y], specs, batch_size=4, seed=1)
>>> len(data), data.n_examples
(3, 10)
>>> xb, yb = data.next_batch()
>>> xb.dtype, yb.dtype, xb.shape
(dtype('float32'), dtype('int64'), (4, 2))
>>> data.epoch, data.batch_index
(0, 1)
"""

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from regularizers.errors import InvalidArgument, UnknownArgument, listing, unknown

__all__ = ["ArraySpec", "CHUNK_ROWS", "Dataset", "check_arrays"]

#: Rows per chunk when :func:`check_arrays` scans a memory-mapped array.
CHUNK_ROWS = 65536

_KINDS = {"float": np.floating, "int": np.integer}
_DEFAULT_DTYPE = {"float": "float32", "int": "int64"}
_END = object()


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_int(argument, value, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if not _is_int(value):
        raise UnknownArgument(argument, f"expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InvalidArgument(argument, f"expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _fmt(value):
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class ArraySpec:
    """What a model expects of one array.

    Parameters
    ----------
    name : str
        The array's name in messages (``'x'``, ``'y'``, ``'weights'``).
    ndim : int
        Number of dimensions, batch axis first.
    features : int or None
        Size of the last axis; None does not check it.
    kind : {'float', 'int'}
        Real values, or integer class labels (integral floats are accepted
        and cast).
    dtype : str or None
        Numpy dtype batches are cast to; None is ``'float32'`` for floats and
        ``'int64'`` for ints.
    low, high : number or None
        Inclusive bounds on the values (classes ``0..n-1``; ``low=0`` for
        non-negative weights).
    time : int or None
        Required size of axis 1 (time steps of a sequence); None is any.
    optional : bool
        Whether the array may be left out; optional specs come last.
    like : str or None
        Name of another spec whose leading ``ndim`` axes this array's shape
        must equal (sample weights follow their targets).

    Examples
    --------
    >>> y = ArraySpec("y", ndim=2, kind="int", low=0, high=9)
    >>> y.dtype, y.axes
    ('int64', ('batch', 'time'))
    >>> w = ArraySpec.weights_for(y)
    >>> w.ndim, w.like, w.low, w.optional
    (2, 'y', 0, True)
    """

    name: str
    ndim: int
    features: int | None = None
    kind: str = "float"
    dtype: str | None = None
    low: float | None = None
    high: float | None = None
    time: int | None = None
    optional: bool = False
    like: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name: expected a non-empty string, got {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(unknown("kind", self.kind, list(_KINDS), kind="array kind"))
        _check_int("ndim", self.ndim, 1)
        _check_int("features", self.features, 1, allow_none=True)
        _check_int("time", self.time, 1, allow_none=True)
        if self.time is not None and self.ndim < 2:
            raise ValueError(f"time: needs ndim >= 2 (time is axis 1), got ndim {self.ndim}")
        dtype = _DEFAULT_DTYPE[self.kind] if self.dtype is None else self.dtype
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype: {dtype!r} is not a numpy dtype") from None
        if not np.issubdtype(dtype, _KINDS[self.kind]):
            raise ValueError(f"dtype: {dtype.name!r} does not hold {self.kind} values")
        object.__setattr__(self, "dtype", dtype.name)
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if value is not None and not isinstance(value, int | float | np.number):
                raise TypeError(f"{bound}: expected a number or None, got {value!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low, high: empty range {self.low}..{self.high}")

    @property
    def axes(self):
        """Names of the axes, for messages: ``('batch', 'time', 'features')``."""
        has_features = self.kind == "float" and self.like is None and self.ndim >= 2
        middle = self.ndim - 1 - has_features
        names = ["time"] if middle == 1 else [f"axis{i + 1}" for i in range(middle)]
        return ("batch", *names, *(["features"] if has_features else []))

    @classmethod
    def weights_for(cls, target, name="weights", dtype="float32"):
        """Optional non-negative sample weights for ``target``: one per example
        (``(batch,)``), or per time step of a sequence (``(batch, time)``)."""
        ndim = target.ndim if target.kind == "int" or target.ndim == 1 else target.ndim - 1
        return cls(name, ndim, kind="float", dtype=dtype, low=0, optional=True, like=target.name)


def _check_specs(specs):
    if not isinstance(specs, list | tuple) or not specs:
        raise TypeError(f"specs: expected a non-empty list of ArraySpec, got {specs!r}")
    for spec in specs:
        if not isinstance(spec, ArraySpec):
            raise TypeError(f"specs: expected ArraySpec entries, got {spec!r}")
    names = [s.name for s in specs]
    if len(set(names)) < len(names):
        raise ValueError(f"specs: names must be unique, got {listing(names)}")
    flags = [s.optional for s in specs]
    if flags != sorted(flags):
        raise ValueError(f"specs: optional arrays must come last, got {listing(names)}")
    for spec in specs:
        if spec.like is not None and spec.like not in names:
            raise ValueError(unknown(f"specs: {spec.name}.like", spec.like, names, kind="array"))
    return tuple(specs)


def _signature(specs):
    required = [s.name for s in specs if not s.optional]
    optional = [s.name for s in specs if s.optional]
    return (
        "(" + ", ".join(required) + "".join(f"[, {n}" for n in optional) + "]" * len(optional) + ")"
    )


def _blocks(array, chunk_rows):
    if isinstance(array, np.memmap):
        for start in range(0, len(array), chunk_rows):
            yield start, np.asarray(array[start : start + chunk_rows])
    else:
        yield 0, array


def _check_values(array, spec, label, argument, chunk_rows):
    is_float = array.dtype.kind == "f"
    what = "labels" if spec.kind == "int" else "values"
    for start, block in _blocks(array, chunk_rows):
        if block.size == 0:
            continue
        if is_float:
            bad = ~np.isfinite(block)
            if bad.any():
                row = start + int(np.flatnonzero(bad.reshape(len(block), -1).any(axis=1))[0])
                raise InvalidArgument(argument, f"{label} contains NaN or Inf (first at row {row})")
            if spec.kind == "int":
                frac = block != np.round(block)
                if frac.any():
                    raise InvalidArgument(
                        argument,
                        f"{label} must hold integer class labels, "
                        f"got {array.dtype} values {_fmt(block[frac][0])}",
                    )
        low, high = spec.low, spec.high
        found = None
        if low is not None and (smallest := block.min()) < low:
            found = smallest
        elif high is not None and (largest := block.max()) > high:
            found = largest
        if found is not None:
            allowed = (
                f"{_fmt(low)}..{_fmt(high)}"
                if low is not None and high is not None
                else (f">= {_fmt(low)}" if low is not None else f"<= {_fmt(high)}")
            )
            raise InvalidArgument(
                argument, f"{label} has {what} out of range: found {_fmt(found)}, allowed {allowed}"
            )


def check_arrays(arrays, specs, argument="train", chunk_rows=None, values=True):
    """Check arrays against a model's specs before anything is compiled.

    Checks, in order: the number of arrays, each array's dtype, rank,
    feature count and time steps, equal lengths, the shapes of arrays tied to
    another by ``like``, then the values: NaN or Inf in float arrays,
    non-integral float labels, and values outside ``low``/``high``. Value
    checks on an ``np.memmap`` read ``chunk_rows`` rows at a time and stop at
    the first problem; other arrays are checked at once.

    Parameters
    ----------
    arrays : list or tuple of array_like
        The data, e.g. ``[x, y]`` or ``[x, y, weights]``.
    specs : sequence of ArraySpec
        What the model expects; trailing optional specs may be left out.
    argument : str
        Where the arrays were given, the first word of every message.
    chunk_rows : int, optional
        Rows per chunk for memory-mapped arrays; default :data:`CHUNK_ROWS`.
    values : bool
        Whether to check values (False checks only structure).

    Returns
    -------
    list of ndarray
        The arrays, as given where they were arrays (memmaps stay memmaps).

    Raises
    ------
    TypeError
        Not a list of arrays, or arrays of a dtype that cannot hold the values.
    ValueError
        Anything else, with what was wrong, the value given and what is allowed.

    Examples
    --------
    >>> specs = [ArraySpec("x", ndim=2, features=8), ArraySpec("y", ndim=1, kind="int", high=9)]
    >>> check_arrays([np.zeros((10, 7)), np.zeros(10, int)], specs)
    Traceback (most recent call last):
    ...
    regularizers.errors.InvalidArgument: train: array 0 ('x') has 7 features; the model's input has 8
    >>> check_arrays([np.zeros((10, 8)), np.full(10, 0.5)], specs, argument="valid")
    Traceback (most recent call last):
    ...
    regularizers.errors.InvalidArgument: valid: array 1 ('y') must hold integer class labels, got float64 values 0.5
    """
    specs = _check_specs(specs)
    chunk_rows = _check_int("chunk_rows", CHUNK_ROWS if chunk_rows is None else chunk_rows, 1)
    signature = _signature(specs)
    if not isinstance(arrays, list | tuple):
        raise UnknownArgument(
            argument, f"expected a list or tuple of arrays {signature}, got {type(arrays).__name__}"
        )
    n_required = sum(not s.optional for s in specs)
    if not n_required <= len(arrays) <= len(specs):
        counts = (
            str(n_required)
            if n_required == len(specs)
            else f"{n_required} {'or' if len(specs) == n_required + 1 else 'to'} {len(specs)}"
        )
        plural = "" if counts == "1" else "s"
        raise InvalidArgument(
            argument, f"expected {counts} array{plural} {signature}, got {len(arrays)}"
        )
    checked = []
    for i, (array, spec) in enumerate(zip(arrays, specs, strict=False)):
        label = f"array {i} ({spec.name!r})"
        if not isinstance(array, np.ndarray):
            try:
                array = np.asarray(array)
            except (TypeError, ValueError) as error:
                raise UnknownArgument(argument, f"{label} is not an array ({error})") from None
        expected = "integer class labels" if spec.kind == "int" else "numbers"
        if array.dtype.kind not in "biuf":
            raise UnknownArgument(argument, f"{label} has dtype {array.dtype}; expected {expected}")
        if array.ndim != spec.ndim:
            raise InvalidArgument(
                argument,
                f"{label} has {array.ndim} dimensions, shape {array.shape}; "
                f"expected {spec.ndim} dimensions ({', '.join(spec.axes)})",
            )
        if spec.features is not None and array.shape[-1] != spec.features:
            role = {"x": "input", "y": "output"}.get(spec.name, f"{spec.name!r} array")
            raise InvalidArgument(
                argument,
                f"{label} has {array.shape[-1]} features; the model's {role} has {spec.features}",
            )
        if spec.time is not None and array.shape[1] != spec.time:
            raise InvalidArgument(
                argument,
                f"{label} has {array.shape[1]} time steps (axis 1), "
                f"shape {array.shape}; the model expects {spec.time}",
            )
        checked.append(array)
    lengths = [len(a) for a in checked]
    if len(set(lengths)) > 1:
        pairs = ", ".join(f"{s.name} {n}" for s, n in zip(specs, lengths, strict=False))
        raise InvalidArgument(argument, f"arrays have different lengths: {pairs}")
    if lengths[0] == 0:
        raise InvalidArgument(argument, "arrays are empty (0 examples); expected at least 1")
    names = [s.name for s in specs]
    for i, (array, spec) in enumerate(zip(checked, specs, strict=False)):
        j = names.index(spec.like) if spec.like is not None else len(checked)
        if j < len(checked) and array.shape != checked[j].shape[: spec.ndim]:
            raise InvalidArgument(
                argument,
                f"array {i} ({spec.name!r}) has shape {array.shape}; expected "
                f"{checked[j].shape[: spec.ndim]}, the leading axes of {spec.like!r} "
                f"{checked[j].shape}",
            )
    if values:
        for i, (array, spec) in enumerate(zip(checked, specs, strict=False)):
            _check_values(array, spec, f"array {i} ({spec.name!r})", argument, chunk_rows)
    return checked


def _basic_check(arrays, argument):
    """Checks without specs: arrays of rank >= 1 with one non-zero length."""
    arrays = [a if isinstance(a, np.ndarray) else np.asarray(a) for a in arrays]
    for i, array in enumerate(arrays):
        if array.ndim == 0:
            raise InvalidArgument(
                argument, f"array {i} is a scalar; expected at least 1 dimension (batch, ...)"
            )
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) > 1:
        pairs = ", ".join(f"[{i}] {n}" for i, n in enumerate(lengths))
        raise InvalidArgument(argument, f"arrays have different lengths: {pairs}")
    if lengths[0] == 0:
        raise InvalidArgument(argument, "arrays are empty (0 examples); expected at least 1")
    return arrays


def _take(array, index):
    """Rows ``index`` (a slice or an int array) of ``array`` as an in-memory array."""
    if not isinstance(array, np.memmap):
        if isinstance(index, slice):
            return array[index]
        return np.take(array, index, axis=0)  # faster than array[index] for row gathers
    if isinstance(index, slice):
        return np.array(array[index])
    order = np.argsort(index, kind="stable")  # read the file in order, then reorder
    out = np.empty((len(index), *array.shape[1:]), dtype=array.dtype)
    out[order] = array[index[order]]
    return out


class Dataset:
    """Batches from arrays, a callable or an iterable, with a resumable position.

    Parameters
    ----------
    source : arrays, array, callable or iterable
        - a list or tuple of arrays with one length, e.g. ``[x, y]``; arrays
          may be ``np.memmap`` (``np.load(path, mmap_mode='r')``), which are
          read batch by batch and never loaded whole;
        - one array, taken as ``[array]``;
        - a callable with no arguments returning one batch (a list of arrays,
          or one array) per call; needs ``epoch_size`` and never runs out;
        - an iterable of batches (a list of lists of arrays, a generator, any
          object with ``__iter__``): an epoch is one pass, or ``epoch_size``
          batches when given. A re-iterable (list, object whose ``__iter__``
          returns a fresh iterator) starts again when a pass ends; a one-shot
          iterator (generator) sets :attr:`exhausted` after its last batch.

        A list whose items are all arrays is arrays; a list of lists or tuples
        is a list of batches.
    specs : sequence of ArraySpec, optional
        What the model expects: arrays are checked with :func:`check_arrays`
        on construction, batches from a callable or iterable as they arrive,
        and every batch is cast to the specs' dtypes.
    batch_size : int
        Examples per batch from arrays. The last batch of an epoch holds the
        remainder (``n % batch_size`` examples) and is kept, not dropped.
    shuffle : bool
        Whether arrays are drawn in a new order each epoch: epoch ``e`` uses
        ``np.random.default_rng([seed, e]).permutation(n)``.
    seed : int
        Seed for the permutations.
    epoch_size : int, optional
        Batches per epoch for a callable or iterable source.
    name : str
        The first word of messages, e.g. ``'train'`` or ``'valid'``.

    Attributes
    ----------
    kind : {'arrays', 'callable', 'iterable'}
        What the source is.
    one_shot : bool
        Whether the source is an iterator that cannot be iterated again.
    batches_per_epoch : int or None
        ``ceil(n / batch_size)`` for arrays, else ``epoch_size``, else the
        ``len()`` of a list of batches or the length of a re-iterable's first
        pass once known; None for a one-shot iterator without ``epoch_size``.
    n_examples : int or None
        Examples in an array source; None for callables and iterables.

    Notes
    -----
    :meth:`next_batch` returns one training batch and advances the position;
    :attr:`epoch` counts completed epochs and goes up as soon as the last batch
    of an epoch is returned, so ``epoch`` before and after a call tells the
    caller that an epoch boundary passed. :meth:`iter_epoch` walks the data
    once in order without moving the position (for validation).

    :meth:`state` and :meth:`set_state` resume exactly: for arrays the order
    is derived from ``(seed, epoch)``; a callable is called again as many
    times as before and its batches thrown away (so it must start from the
    same internal state, e.g. a fresh generator seeded the same way); a
    re-iterable is iterated again and skipped to the saved position. A
    one-shot iterator cannot replay its past: restoring a position other than
    its current one is a ValueError.

    Examples
    --------
    >>> data = Dataset(np.arange(5), batch_size=2, shuffle=False)
    >>> [data.next_batch()[0].tolist() for _ in range(3)], data.epoch
    ([[0, 1], [2, 3], [4]], 1)
    >>> saved = data.state()
    >>> first = data.next_batch()
    >>> again = Dataset(np.arange(5), batch_size=2, shuffle=False)
    >>> again.set_state(saved)
    >>> again.next_batch()[0].tolist() == first[0].tolist()
    True
    >>> batches = iter([[np.zeros(2)], [np.ones(3)]])
    >>> stream = Dataset(batches)
    >>> [len(stream.next_batch()[0]) for _ in range(2)], stream.exhausted
    ([2, 3], True)
    """

    def __init__(
        self, source, specs=None, batch_size=32, shuffle=True, seed=0, epoch_size=None, name="train"
    ):
        if not isinstance(name, str):
            raise TypeError(f"name: expected a string, got {name!r}")
        self.name = name
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if not isinstance(shuffle, bool | np.bool_):
            raise TypeError(f"shuffle: expected True or False, got {shuffle!r}")
        self.shuffle = bool(shuffle)
        self.seed = _check_int("seed", seed, 0)
        self.epoch_size = _check_int("epoch_size", epoch_size, 1, allow_none=True)
        self.specs = None if specs is None else _check_specs(specs)
        self.source = source
        self.one_shot = False
        self.n_examples = None
        self._arrays = None
        if isinstance(source, np.ndarray):
            source = [source]
        if isinstance(source, list | tuple) and not source:
            raise InvalidArgument(
                name, f"got an empty {type(source).__name__}; expected [x, y, ...]"
            )
        if isinstance(source, list | tuple) and all(isinstance(a, np.ndarray) for a in source):
            self.kind = "arrays"
            if self.epoch_size is not None:
                raise ValueError(
                    f"epoch_size: only for a callable or iterable source; an epoch over arrays "
                    f"is one pass over them, got epoch_size={epoch_size}"
                )
            self._arrays = (
                check_arrays(list(source), self.specs, argument=name)
                if self.specs is not None
                else _basic_check(source, name)
            )
            self.n_examples = len(self._arrays[0])
            self.batches_per_epoch = math.ceil(self.n_examples / self.batch_size)
        elif isinstance(source, list | tuple):
            if not all(isinstance(b, list | tuple) for b in source):
                kinds = sorted({type(item).__name__ for item in source})
                raise UnknownArgument(
                    name,
                    f"a {type(source).__name__} source holds arrays [x, y, ...] or "
                    f"batches (lists of arrays); got items of types {', '.join(kinds)}",
                )
            self.kind = "iterable"
            self.batches_per_epoch = self.epoch_size or len(source)
        elif callable(source):
            self.kind = "callable"
            if self.epoch_size is None:
                raise ValueError(
                    "epoch_size: a callable source needs the number of batches per epoch, got None"
                )
            self.batches_per_epoch = self.epoch_size
        elif isinstance(source, Iterable) and not isinstance(source, str | bytes | Mapping):
            self.kind = "iterable"
            self.one_shot = isinstance(source, Iterator)
            self.batches_per_epoch = self.epoch_size
        else:
            raise UnknownArgument(
                name,
                f"expected a list of arrays [x, y, ...], a callable returning batches or "
                f"an iterable of batches; got {type(source).__name__}",
            )
        self._epoch = self._batch_index = self._drawn = self._calls = self._iter_pos = 0
        self._exhausted = False
        self._iter = self._pending = None
        self._perm = (None, None)

    def __repr__(self):
        return (
            f"Dataset({self.name!r}, {self.kind}, n_examples={self.n_examples}, "
            f"batch_size={self.batch_size}, batches_per_epoch={self.batches_per_epoch}, "
            f"epoch={self._epoch}, batch_index={self._batch_index})"
        )

    def __len__(self):
        if self.batches_per_epoch is None:
            raise TypeError(
                f"{self.name}: the number of batches per epoch of a one-shot iterator is "
                f"unknown; give epoch_size"
            )
        return self.batches_per_epoch

    def __bool__(self):
        return True

    @property
    def arrays(self):
        """The arrays of an array source as held (memmaps stay memmaps), else None."""
        return self._arrays

    @property
    def epoch(self):
        """Number of completed epochs (0 during the first)."""
        return self._epoch

    @property
    def batch_index(self):
        """Batches drawn so far in the current epoch."""
        return self._batch_index

    @property
    def drawn(self):
        """Training batches drawn since construction (over all epochs)."""
        return self._drawn

    @property
    def exhausted(self):
        """True once a one-shot iterator has given its last batch."""
        return self._exhausted

    def _prepare(self, batch, index):
        """Check and cast one batch from a callable or an iterable."""
        argument = f"{self.name} batch {index}"
        if isinstance(batch, np.ndarray):
            batch = [batch]
        if not isinstance(batch, list | tuple):
            raise UnknownArgument(
                argument,
                f"expected a list or tuple of arrays, or one array; got {type(batch).__name__}",
            )
        if self.specs is None:
            return _basic_check(batch, argument)
        return self._cast(check_arrays(list(batch), self.specs, argument=argument))

    def _cast(self, arrays):
        if self.specs is None:
            return list(arrays)
        return [np.asarray(a, dtype=s.dtype) for a, s in zip(arrays, self.specs, strict=False)]

    def _array_batch(self, epoch, index, batch_size, shuffle):
        start, stop = index * batch_size, min((index + 1) * batch_size, self.n_examples)
        rows = slice(start, stop)
        if shuffle:
            if self._perm[0] != (self.seed, epoch):
                rng = np.random.default_rng([self.seed, epoch])
                self._perm = ((self.seed, epoch), rng.permutation(self.n_examples))
            rows = self._perm[1][start:stop]
        return self._cast([_take(a, rows) for a in self._arrays])

    def _pull(self):
        """Next batch of the iterable, looking one ahead to see where a pass ends."""
        if self._pending is None:
            if self._iter is None:
                self._iter, self._iter_pos = iter(self.source), 0
            self._pending = next(self._iter, _END)
            if self._pending is _END:
                raise ValueError(
                    f"{self.name}: the iterable gave no batch after {self._iter_pos}; "
                    f"expected at least one batch per pass"
                )
        batch, self._iter_pos = self._pending, self._iter_pos + 1
        self._pending = next(self._iter, _END)
        ended = self._pending is _END
        if ended and self.one_shot:
            self._exhausted = True
        elif ended:
            if self.epoch_size is None:
                self.batches_per_epoch = self._iter_pos
            self._iter = self._pending = None
            self._iter_pos = 0
        return batch, ended

    def next_batch(self):
        """Draw the next training batch and advance the position.

        Returns
        -------
        list of ndarray
            One batch, cast to the specs' dtypes when specs were given.
        """
        if self._exhausted:
            raise RuntimeError(
                f"{self.name}: the one-shot iterator ran out after {self._drawn} batches; "
                f"pass a list, a re-iterable or a callable with epoch_size to train longer"
            )
        ended = False
        if self.kind == "arrays":
            batch = self._array_batch(self._epoch, self._batch_index, self.batch_size, self.shuffle)
        elif self.kind == "callable":
            batch, self._calls = self._prepare(self.source(), self._drawn), self._calls + 1
        else:
            batch, ended = self._pull()
            batch = self._prepare(batch, self._drawn)
        self._drawn += 1
        self._batch_index += 1
        if self._batch_index == self.batches_per_epoch or (ended and self.epoch_size is None):
            self._epoch, self._batch_index = self._epoch + 1, 0
        return batch

    def iter_epoch(self, batch_size=None):
        """Yield one pass over the data in order, without moving the position.

        Arrays come in order (no shuffle) in batches of ``batch_size``
        (default: the dataset's); a callable is called ``epoch_size`` times
        (counted for :meth:`set_state`); a re-iterable is iterated afresh
        (``epoch_size`` batches at most). A one-shot iterator is a TypeError.

        >>> data = Dataset([np.arange(5)], batch_size=2)
        >>> [b[0].tolist() for b in data.iter_epoch()], data.batch_index
        ([[0, 1], [2, 3], [4]], 0)
        """
        if self.one_shot:
            raise TypeError(
                f"{self.name}: a one-shot iterator cannot be walked again without using up its "
                f"batches; pass a list of batches or a re-iterable"
            )
        if self.kind == "arrays":
            batch_size = _check_int(
                "batch_size", self.batch_size if batch_size is None else batch_size, 1
            )
        return self._walk(batch_size)

    def _walk(self, batch_size):
        if self.kind == "arrays":
            for index in range(math.ceil(self.n_examples / batch_size)):
                yield self._array_batch(None, index, batch_size, shuffle=False)
        elif self.kind == "callable":
            for index in range(self.epoch_size):
                self._calls += 1
                yield self._prepare(self.source(), index)
        else:
            for index, batch in enumerate(self.source):
                if self.epoch_size is not None and index == self.epoch_size:
                    break
                yield self._prepare(batch, index)

    def state(self):
        """The position, as a JSON-serialisable dict for :meth:`set_state`."""
        return {
            "name": self.name,
            "source": self.kind,
            "epoch": self._epoch,
            "batch_index": self._batch_index,
            "drawn": self._drawn,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_size": self.batch_size,
            "n_examples": self.n_examples,
            "epoch_size": self.epoch_size,
            "batches_per_epoch": self.batches_per_epoch,
            "calls": self._calls,
            "iter_position": self._iter_pos,
            "exhausted": self._exhausted,
        }

    def set_state(self, state):
        """Move to a position saved by :meth:`state` (the seed is taken from it).

        Raises ValueError when the state belongs to a different kind of
        source, other data or other batching, or cannot be reached (a callable
        already called more often, a one-shot iterator elsewhere).
        """
        keys = list(self.state())
        if not isinstance(state, Mapping):
            raise TypeError(f"state: expected a dict from Dataset.state(), got {state!r}")
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"state: missing {listing(missing)}; expected keys {listing(keys)}")
        fixed = ["source", "epoch_size"] + (
            ["n_examples", "batch_size", "shuffle"] if self.kind == "arrays" else []
        )
        for key in fixed:
            mine = self.kind if key == "source" else getattr(self, key)
            if state[key] != mine:
                raise ValueError(
                    f"state: saved with {key} {state[key]!r}; "
                    f"this dataset ({self.name}) has {mine!r}"
                )
        for key in ("epoch", "batch_index", "drawn", "seed", "calls", "iter_position"):
            _check_int(f"state[{key!r}]", state[key], 0)
        if self.kind == "arrays" and state["batch_index"] >= self.batches_per_epoch:
            raise ValueError(
                f"state: batch_index {state['batch_index']} is past the end of an epoch "
                f"({self.batches_per_epoch} batches)"
            )
        if self.kind == "callable":
            if state["calls"] < self._calls:
                raise ValueError(
                    f"state: the callable was called {state['calls']} times when saved and "
                    f"{self._calls} times here; a callable cannot be rewound"
                )
            for _ in range(state["calls"] - self._calls):
                self.source()
            self._calls = state["calls"]
        elif self.one_shot:
            here = (self._drawn, self._iter_pos, self._exhausted)
            if (state["drawn"], state["iter_position"], state["exhausted"]) != here:
                raise ValueError(
                    f"state: a one-shot iterator cannot be moved to batch {state['drawn']}; it is "
                    f"at batch {self._drawn}. Pass a list, a re-iterable or a callable to resume"
                )
        elif self.kind == "iterable":
            self._iter, self._pending, self._iter_pos = iter(self.source), None, 0
            for _ in range(state["iter_position"]):
                if next(self._iter, _END) is _END:
                    raise ValueError(
                        f"state: position {state['iter_position']} is past the end of the "
                        f"iterable ({self._iter_pos} batches)"
                    )
                self._iter_pos += 1
            if self.batches_per_epoch is None:
                self.batches_per_epoch = state["batches_per_epoch"]
        self.seed = int(state["seed"])
        self._epoch, self._batch_index = int(state["epoch"]), int(state["batch_index"])
        self._drawn = int(state["drawn"])
