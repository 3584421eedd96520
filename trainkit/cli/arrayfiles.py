r"""Arrays in data files: ``.npz``, ``.npy`` and CSV read, predictions written.

- ``.npz``: named arrays; ``x``, ``y``, ``weights`` name which is which
  (default ``x`` and ``y``). Declared sizes are checked before reading
  (:mod:`trainkit.npzfile`); a damaged or truncated file is one line.
- ``.npy``: one array per file, memory-mapped (``np.load(mmap_mode='r')``), so
  training reads it batch by batch; give one file per role,
  ``{x = "x.npy", y = "y.npy"}``.
- CSV: a header row of column names, then numbers; ``y`` (and ``weights``)
  name columns, ``x`` the input columns (default: every other column).
- :func:`write_output` writes predictions as ``.npy`` or CSV.

What a config's ``[data]`` section makes of these files is
:mod:`trainkit.cli.files`. Every problem is a
:class:`~trainkit.cli.errors.DataError`: one line with the file, the key of ``[data]`` it
concerns (``key``), what was wrong and what is there:

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> np.savez(os.path.join(folder, "train.npz"), inputs=np.zeros((4, 2)), labels=np.arange(4))
>>> read_file(os.path.join(folder, "train.npz"), {"x": "input", "y": "labels"})
Traceback (most recent call last):
...
trainkit.cli.errors.DataError: .../train.npz: no array 'input'; the file holds inputs, labels (closest: inputs)
"""  # noqa: E501

import contextlib
import csv
import os
from pathlib import Path

import numpy as np

from regularizers.errors import closest_hint, listing

from .. import npzfile
from .errors import DataError

__all__ = [
    "read_csv",
    "read_file",
    "read_input",
    "read_npy",
    "write_output",
]


# -- reading files ------------------------------------------------------------------


def _existing(path, key=None):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file", key)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a data file", key)
    return path


def read_npy(path, key=None):
    """One ``.npy`` array, memory-mapped (read-only)."""
    path = _existing(path, key)
    with open(path, "rb") as file:
        if file.read(6) != b"\x93NUMPY":
            raise DataError(
                f"{path}: not an .npy file (it does not start with the .npy magic)", key
            )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy file ({_reason(error)})", key) from None
    if array.dtype.hasobject:  # pragma: no cover - np.load refuses these first
        raise DataError(f"{path}: holds Python objects; save numeric arrays", key)
    return array


def _reason(error):
    """What was wrong, in words that never advise loading pickles."""
    text = " ".join(str(error).split())
    if "pickle" in text:
        return "it holds Python objects (pickled data), which trainkit never loads"
    return text


@contextlib.contextmanager
def _npz(path, key=None):
    """An .npz file opened and surveyed: ``(zipfile, {name: Member})``; damage is a DataError."""
    try:
        with npzfile.open_npz(path, max_ratio=None) as opened:
            yield opened
    except npzfile.CheckpointError as error:
        raise DataError(f"{path}: not a readable .npz file ({_reason(error.why)})", key) from None
    except npzfile._DAMAGED + (ValueError, OSError) as error:
        if isinstance(error, DataError):
            raise
        why = f"{type(error).__name__}: {_reason(error)}"
        raise DataError(
            f"{path}: not a readable .npz file, damaged or truncated ({why})", key
        ) from None


def _npz_arrays(path, names, key=None):
    """``{role: array}`` for ``names`` (``{role: array name}``) from an .npz file."""
    path = _existing(path, key)
    with _npz(path, key) as (archive, members):
        held = list(members)
        out = {}
        for role, name in names.items():
            if not isinstance(name, str):
                raise DataError(
                    f"{path}: {role} must name one array of the .npz file, got {name!r}", role
                )
            if name not in held:
                raise DataError(
                    f"{path}: no array {name!r}; the file holds {listing(held)}"
                    f"{closest_hint(name, held)}",
                    role,
                )
            out[role] = npzfile.read_member(archive, members[name])
        return out


def _csv_header(path, key=None):
    with open(path, newline="", encoding="utf-8") as file:
        try:
            header = next(csv.reader(file), None)
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"{path}: not a readable CSV file ({error})", key) from None
    if not header:
        raise DataError(f"{path}: empty file; expected a header row of column names", key)
    return [h.strip() for h in header]


def _check_rows(path, width, key=None):
    """Refuse a ragged CSV file: every row has the header's number of fields.

    ``np.loadtxt`` with ``usecols`` would read a row with an extra field as
    if it were not there, and a field inserted mid-row would shift the row's
    values into the wrong columns.
    """
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        try:
            next(reader, None)
            for row in reader:
                if row and len(row) != width:
                    raise DataError(
                        f"{path}: line {reader.line_num}: {len(row)} fields, the header has "
                        f"{width}; every row needs one value per column",
                        key,
                    )
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"{path}: not a readable CSV file ({error})", key) from None


def read_csv(path, columns, key=None):
    """Columns of a CSV file with a header row: ``{role: array}``.

    Parameters
    ----------
    path : str
        The file; the first row names the columns, the others hold numbers.
    columns : dict
        ``{role: column name or list of names}``; ``None`` for ``'x'`` means
        every column not used by another role. A single name gives a 1-D
        array, a list a 2-D one.
    """
    path = _existing(path, key)
    header = _csv_header(path, key)
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: column names repeat: {listing(twice)}", key)
    used = set()
    for role, names in columns.items():
        if names is None:
            continue
        for name in [names] if isinstance(names, str) else names:
            if name not in header:
                raise DataError(
                    f"{path}: no column {name!r}; the columns are {listing(header)}"
                    f"{closest_hint(name, header)}",
                    role,
                )
            used.add(name)
    picks = {}
    for role, names in columns.items():
        if names is None and role != "x":
            continue
        if names is None:
            names = [h for h in header if h not in used]
            if not names:
                raise DataError(f"{path}: no columns left for {role}", role)
        picks[role] = names
    wanted = sorted(
        {header.index(n) for v in picks.values() for n in ([v] if isinstance(v, str) else v)}
    )
    _check_rows(path, len(header), key)
    try:
        table = np.loadtxt(
            path, delimiter=",", skiprows=1, usecols=wanted, ndmin=2, dtype=np.float64
        )
    except ValueError as error:
        raise DataError(f"{path}: {error}", key) from None
    if table.shape[0] == 0:
        raise DataError(f"{path}: no rows after the header", key)
    position = {col: i for i, col in enumerate(wanted)}
    out = {}
    for role, names in picks.items():
        if isinstance(names, str):
            out[role] = table[:, position[header.index(names)]]
        else:
            out[role] = table[:, [position[header.index(n)] for n in names]]
    return out


def read_file(path, names, key=None):
    """``{role: array}`` from a ``.npz`` or ``.csv`` file.

    ``names`` maps roles (``x``, ``y``, ``lengths``, ``weights``) to array names (.npz) or
    column names (.csv; ``x=None`` is every other column).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return _npz_arrays(path, {r: n for r, n in names.items() if n is not None}, key)
    if suffix == ".csv":
        return read_csv(path, names, key)
    if suffix == ".npy":
        wanted = [r for r, n in names.items() if n is not None or r == "x"]
        if wanted != ["x"]:
            raise DataError(
                f"{path}: a .npy file holds one array, but {', '.join(wanted)} are needed; give "
                f'one file per array, e.g. {{x = "x.npy", y = "y.npy"}}',
                key,
            )
        return {"x": read_npy(path, key)}
    raise DataError(
        f"{path}: unknown file type {suffix or '(none)'!r}; use .npz, .npy or .csv", key
    )


def read_input(path, array=None, columns=None):
    """The input array of a data file for prediction.

    ``.npy`` files are memory-mapped; ``.npz`` files give ``array`` (default:
    their only array, else the one named ``x``); CSV files give ``columns``
    (default: all).
    """
    path = _existing(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return read_npy(path)
    if suffix == ".npz":
        if array is None:
            with _npz(path) as (_, members):
                held = list(members)
            if len(held) == 1:
                array = held[0]
            elif "x" in held:
                array = "x"
            else:
                raise DataError(
                    f"{path}: holds {listing(held)}; choose the input array with --array NAME"
                )
        return _npz_arrays(path, {"x": array})["x"]
    if suffix == ".csv":
        return read_csv(path, {"x": columns})["x"]
    raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}; use .npz, .npy or .csv")


# -- writing predictions ------------------------------------------------------------------


def write_output(path, array, header=None):
    """Write predictions to ``.npy`` or ``.csv`` (1-D or 2-D; a header row of names)."""
    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        np.save(path, array)
        return
    if suffix != ".csv":
        raise DataError(f"{path}: unknown output type {suffix or '(none)'!r}; use .npy or .csv")
    if array.ndim > 2:
        raise DataError(
            f"{path}: predictions of shape {array.shape} do not fit a CSV table; write .npy"
        )
    table = array.reshape(len(array), -1)
    integer = np.issubdtype(table.dtype, np.integer)
    np.savetxt(
        path,
        table,
        delimiter=",",
        fmt="%d" if integer else "%.7g",
        header=",".join(header or []),
        comments="",
    )
