"""What a model expects of its data, checked before anything is compiled.

A model states what it expects of each array as an :class:`ArraySpec`;
:func:`check_arrays` validates user data against those specs (shapes, dtypes,
NaNs, label ranges; memory-mapped arrays in chunks) and says what is wrong in
one line naming the argument.

>>> specs = [ArraySpec("x", ndim=2, features=2), ArraySpec("y", ndim=1, kind="int", low=0, high=2)]
>>> [a.dtype for a in check_arrays([np.zeros((4, 2)), np.arange(4) % 3], specs)]
[dtype('float64'), dtype('int64')]
"""

from dataclasses import dataclass

import numpy as np

from regularizers.errors import InvalidArgument, UnknownArgument, listing, unknown

__all__ = ["ArraySpec", "CHUNK_ROWS", "check_arrays"]

#: Rows per chunk when :func:`check_arrays` scans a memory-mapped array.
CHUNK_ROWS = 65536

_KINDS = {"float": np.floating, "int": np.integer}
_DEFAULT_DTYPE = {"float": "float32", "int": "int64"}


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
    what : str or None
        What the values are, for messages (``'token ids'``); with it, a value
        out of range is reported with its first position (``x[3, 5]``).
    like : str or None
        Name of another spec whose leading ``ndim`` axes this array's shape
        must equal (sample weights follow their targets).
    steps_of : str or None
        Name of another spec whose axis 1 (time steps) bounds the values from
        above: sequence lengths are at most the padded length of ``x``.
    positive_total : bool
        Whether at least one value must be positive (sample weights: with
        every weight 0 no mean is defined).

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
    what: str | None = None
    steps_of: str | None = None
    positive_total: bool = False

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
        return cls(
            name,
            ndim,
            kind="float",
            dtype=dtype,
            low=0,
            optional=True,
            like=target.name,
            positive_total=True,
        )

    @property
    def noun(self):
        """What the values are, for messages: ``'integer class labels'``, ``'numbers'``."""
        if self.kind == "float":
            return "numbers"
        return "integer sequence lengths" if self.steps_of is not None else "integer class labels"


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
        for field in ("like", "steps_of"):
            other = getattr(spec, field)
            if other is not None and other not in names:
                raise ValueError(unknown(f"specs: {spec.name}.{field}", other, names, kind="array"))
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


def _check_values(array, spec, label, argument, chunk_rows, bound=None):
    is_float = array.dtype.kind == "f"
    what = spec.what or ("values" if spec.kind == "float" else spec.noun.split()[-1])
    positive = False
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
                        f"{label} must hold {spec.noun}, "
                        f"got {array.dtype} values {_fmt(block[frac][0])}",
                    )
        positive = positive or bool((block > 0).any())
        low, high = spec.low, spec.high
        if bound is not None:
            high = bound[0] if high is None else min(high, bound[0])
        found = None
        if low is not None and (smallest := block.min()) < low:
            found = smallest
        elif high is not None and (largest := block.max()) > high:
            found = largest
        if found is not None:
            where = ""
            if spec.what:  # the first bad value by position, and where it is
                bad = np.zeros(block.shape, bool)
                if low is not None:
                    bad |= block < low
                if high is not None:
                    bad |= block > high
                first = np.argwhere(bad)[0]
                found = block[tuple(first)]
                first[0] += start
                where = f" at {spec.name}[{', '.join(map(str, first))}]"
            allowed = (
                f"{_fmt(low)}..{_fmt(high)}"
                if low is not None and high is not None
                else (f">= {_fmt(low)}" if low is not None else f"<= {_fmt(high)}")
            )
            within = f" (the {bound[1]})" if bound is not None and high == bound[0] else ""
            raise InvalidArgument(
                argument,
                f"{label} has {what} out of range: found {_fmt(found)}{where}, allowed {allowed}{within}",
            )
    if spec.positive_total and array.size and not positive:
        raise InvalidArgument(
            argument,
            f"{label} is 0 everywhere; at least one sample weight must be positive "
            f"(every weight 0 leaves the weighted mean undefined)",
        )


def check_arrays(arrays, specs, argument="train", chunk_rows=None, values=True):
    """Check arrays against a model's specs before anything is compiled.

    Checks, in order: the number of arrays, each array's dtype, rank,
    feature count and time steps, equal lengths, the shapes of arrays tied to
    another by ``like``, then the values: NaN or Inf in float arrays,
    non-integral float labels, values outside ``low``/``high`` (and above
    the time steps of the array named by ``steps_of``), and weights that are
    0 everywhere (``positive_total``). Value
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
        if array.dtype.kind not in "biuf":
            raise UnknownArgument(
                argument, f"{label} has dtype {array.dtype}; expected {spec.noun}"
            )
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
            bound = None
            j = names.index(spec.steps_of) if spec.steps_of is not None else len(checked)
            if j < len(checked) and checked[j].ndim >= 2:
                bound = (checked[j].shape[1], f"time steps of {spec.steps_of!r}")
            _check_values(array, spec, f"array {i} ({spec.name!r})", argument, chunk_rows, bound)
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
