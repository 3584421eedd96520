r"""Data files for the command line: ``.npz``, ``.npy``, CSV, a validation split, digits.

- ``.npz``: named arrays; ``x``, ``y``, ``weights`` name which is which
  (default ``x`` and ``y``). Declared sizes are checked before reading
  (:mod:`trainkit.npzfile`); a damaged or truncated file is one line.
- ``.npy``: one array per file, memory-mapped (``np.load(mmap_mode='r')``), so
  training reads it batch by batch; give one file per role,
  ``{x = "x.npy", y = "y.npy"}``.
- CSV: a header row of column names, then numbers; ``y`` (and ``weights``)
  name columns, ``x`` the input columns (default: every other column).
- A validation split holds out a seeded random fraction of the examples,
  chosen by index from the length alone; memory-mapped arrays are copied
  chunk by chunk into memory-mapped files in a scratch folder, never read
  whole.
- :func:`digits` is the UCI handwritten digits (1,797 8x8 images, classes
  0-9) shipped with trainkit: see ``trainkit/data/README.md``.

Every problem is a :class:`DataError`: one line with the file, the key of
``[data]`` it concerns (``key``), what was wrong and what is there:

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> np.savez(os.path.join(folder, "train.npz"), inputs=np.zeros((4, 2)), labels=np.arange(4))
>>> read_file(os.path.join(folder, "train.npz"), {"x": "input", "y": "labels"})
Traceback (most recent call last):
...
trainkit.cli.files.DataError: .../train.npz: no array 'input'; the file holds inputs, labels (closest: inputs)
"""  # noqa: E501

import contextlib
import csv
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regularizers.errors import closest_hint, listing

from .. import npzfile

__all__ = [
    "BUILTIN",
    "CHUNK_ROWS",
    "DataError",
    "Data",
    "digits",
    "fit_input",
    "load",
    "read_csv",
    "read_file",
    "read_input",
    "split_indices",
    "take_rows",
    "write_output",
]

DATA_DIR = Path(__file__).parent / "builtin"
#: rows copied at a time from a memory-mapped array
CHUNK_ROWS = 65536
ROLES = ("x", "y", "lengths", "weights")


class DataError(ValueError):
    """Bad or missing data; ``key`` is the ``[data]`` key it concerns, if any."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


# -- the built-in data --------------------------------------------------------------


def digits():
    """The UCI handwritten digits as 8 rows of 8 pixels: ``(x, y)``.

    Returns
    -------
    x : ndarray, float32, shape (1797, 8, 8)
        Pixel counts 0..16 scaled to [0, 1]; axis 1 is the image row (time
        step), axis 2 the column (feature).
    y : ndarray, int64, shape (1797,)
        The digit, 0..9.

    >>> x, y = digits()
    >>> x.shape, x.dtype, float(x.max()), np.bincount(y).tolist()
    ((1797, 8, 8), dtype('float32'), 1.0, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    """
    with gzip.open(DATA_DIR / "digits.csv.gz", "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.float64)
    x = (table[:, :64] / 16.0).reshape(-1, 8, 8).astype(np.float32)
    return x, table[:, 64].astype(np.int64)


BUILTIN = {"digits": digits}


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


# -- shaping, splitting -----------------------------------------------------------


def fit_input(x, n_in, recurrent, where="x"):
    """``x`` shaped for a model with ``n_in`` input features.

    A recurrent model reads ``(batch, time, features)``; a 2-D array (a CSV
    file, flattened sequences) is read as ``(batch, time * features)``, time
    step after time step, and reshaped (memory maps stay memory maps).
    """
    if recurrent and x.ndim == 2:
        if x.shape[1] % n_in:
            raise DataError(
                f"{where}: {x.shape[1]} values per example cannot be read as sequences of "
                f"{n_in} features (the model's input size); expected a multiple of {n_in}"
            )
        return x.reshape(len(x), x.shape[1] // n_in, n_in)
    return x


def split_indices(n, fraction, seed=0):
    """Seeded split of ``range(n)`` into sorted ``(train, valid)`` index arrays.

    ``round(n * fraction)`` examples (at least 1, at most ``n - 1``) go to
    validation; only the length is needed, not the data.

    >>> train, valid = split_indices(10, 0.3, seed=0)
    >>> len(train), len(valid), sorted([*train, *valid]) == list(range(10))
    (7, 3, True)
    """
    if n < 2:
        raise DataError(f"valid_fraction: cannot split {n} example(s); need at least 2")
    k = min(max(int(round(n * fraction)), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def take_rows(array, index, scratch=None, chunk_rows=CHUNK_ROWS):
    """Rows ``index`` (sorted) of ``array``.

    In-memory arrays are indexed directly. A memory-mapped array is copied
    ``chunk_rows`` rows at a time into a new ``.npy`` file in the folder
    ``scratch`` and returned memory-mapped, so it is never loaded whole.
    """
    if not isinstance(array, np.memmap) or scratch is None:
        return np.asarray(array[index])
    from numpy.lib.format import open_memmap

    fd, path = _scratch_file(scratch)
    os.close(fd)
    out = open_memmap(path, mode="w+", dtype=array.dtype, shape=(len(index), *array.shape[1:]))
    for start in range(0, len(index), chunk_rows):
        rows = index[start : start + chunk_rows]
        out[start : start + len(rows)] = array[rows]
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def _scratch_file(folder):
    import tempfile

    return tempfile.mkstemp(suffix=".npy", dir=folder)


# -- a [data] section -----------------------------------------------------------------


@dataclass
class Data:
    """Arrays for ``net.train(train, valid)`` and what they are.

    Attributes
    ----------
    train : list of ndarray
        ``[x, y]``, ``[x]`` (autoencoder), optionally with weights last.
    valid : list of ndarray or None
        The same for validation; None validates on the training data.
    description : str
        One line saying where the data came from and how it was split.
    """

    train: list
    valid: list | None
    description: str

    @property
    def n_train(self):
        return len(self.train[0])

    @property
    def n_valid(self):
        return None if self.valid is None else len(self.valid[0])


def _roles(kind, data):
    roles = {role: data.get(role) for role in ROLES}
    if kind == "Autoencoder":
        if roles["y"] is not None:
            raise DataError("an Autoencoder's target is its input; remove y", "y")
        del roles["y"]
    return roles


def _read_source(source, roles, key):
    """``{role: array}`` from ``train``/``valid``: a file path or a table of .npy files."""
    if isinstance(source, dict):
        out = {}
        for role, path in source.items():
            if role not in roles:
                raise DataError(f"{key}.{role}: this model takes no {role} array", key)
            suffix = Path(path).suffix.lower()
            if suffix != ".npy":
                raise DataError(
                    f"{path}: a table of arrays takes one .npy file per array; got {suffix!r}", key
                )
            out[role] = read_npy(path, key)
        return out
    suffix = Path(source).suffix.lower()
    names = dict(roles)
    if suffix in (".npz", ".npy"):
        names["x"] = names["x"] or "x"
        if "y" in names:
            names["y"] = names["y"] or "y"
    elif suffix == ".csv" and "y" in names and names["y"] is None:
        raise DataError(f'{source}: name the target column(s) of the CSV file with y = "..."', "y")
    return read_file(source, names, key)


def _arrays(found, roles, source, key, needed):
    for role in needed:
        if role not in found:
            raise DataError(f"{_name(source)}: no {role} array given", key)
    # the order net.train takes: inputs, targets, sequence lengths, sample weights
    ordered = [found[r] for r in ROLES if r in found and r in roles]
    lengths = {r: len(found[r]) for r in ROLES if r in found}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{r} {n}" for r, n in lengths.items())
        raise DataError(f"{_name(source)}: arrays have different lengths: {shown}", key)
    if lengths and next(iter(lengths.values())) == 0:
        raise DataError(f"{_name(source)}: no examples (length 0)", key)
    return ordered


def _name(source):
    if isinstance(source, dict):
        return ", ".join(f"{k} = {v}" for k, v in source.items())
    return os.fspath(source)


def load(data, kind, scratch=None):
    """The arrays a ``[data]`` section names (paths already absolute).

    Parameters
    ----------
    data : dict
        The ``[data]`` section (see :mod:`trainkit.config`).
    kind : str
        ``'Regressor'``, ``'Classifier'`` or ``'Autoencoder'``: which arrays
        are needed.
    scratch : str, optional
        Folder for the split copies of memory-mapped arrays (see
        :func:`take_rows`); without it they are split in memory.

    Returns
    -------
    Data
    """
    needed = ["x"] if kind == "Autoencoder" else ["x", "y"]
    fraction = data.get("valid_fraction")
    seed = data.get("split_seed", 0)
    if "builtin" in data:
        name = data["builtin"]
        x, y = BUILTIN[name]()
        if kind == "Autoencoder":
            found, roles = {"x": x}, {"x": None}
        else:
            found, roles = {"x": x, "y": y}, {"x": None, "y": None}
        train = _arrays(found, roles, f"builtin {name}", "builtin", needed)
        what = f"builtin {name} ({len(x)} examples)"
    elif "train" in data:
        roles = _roles(kind, data)
        found = _read_source(data["train"], roles, "train")
        train = _arrays(found, roles, data["train"], "train", needed)
        what = f"{_name(data['train'])} ({len(train[0])} examples)"
    else:
        raise DataError('no training data; give [data] train = "file" or builtin = "digits"')
    if kind == "Regressor" and train[1].ndim == 1:
        train[1] = train[1].reshape(-1, 1)  # one target column: (batch, 1)
    valid = None
    if "valid" in data:
        found = _read_source(data["valid"], roles, "valid")
        valid = _arrays(found, roles, data["valid"], "valid", needed)
        if kind == "Regressor" and valid[1].ndim == 1:
            valid[1] = valid[1].reshape(-1, 1)
        what += f", validation {_name(data['valid'])} ({len(valid[0])} examples)"
    elif fraction is not None:
        train_rows, valid_rows = split_indices(len(train[0]), fraction, seed)
        valid = [take_rows(a, valid_rows, scratch) for a in train]
        train = [take_rows(a, train_rows, scratch) for a in train]
        what += (
            f", {len(valid_rows)} held out for validation (valid_fraction {fraction}, "
            f"split_seed {seed})"
        )
    else:
        what += ", validation on the training data (no valid file or valid_fraction)"
    return Data(train, valid, what)


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
