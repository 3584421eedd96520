r"""Data for the command line: a ``[data]`` section's arrays, a validation split, digits.

- :func:`load` reads what a config's ``[data]`` names, data files or a
  built-in data set, into a :class:`Data`. The files (``.npz``, ``.npy``
  memory-mapped, CSV) are read by :mod:`trainkit.cli.arrayfiles`.
- A validation split holds out a seeded random fraction of the examples,
  chosen by index from the length alone; memory-mapped arrays are copied
  chunk by chunk into memory-mapped files in a scratch folder, never read
  whole.
- :func:`digits` is the UCI handwritten digits (1,797 8x8 images, classes
  0-9) shipped with trainkit: see ``trainkit/cli/builtin/README.md``.

Every problem is a :class:`~trainkit.cli.errors.DataError`: one line with the file, the key of
``[data]`` it concerns (``key``), what was wrong and what is there.
"""

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arrayfiles import read_file, read_npy
from .errors import DataError

__all__ = [
    "BUILTIN",
    "CHUNK_ROWS",
    "Data",
    "digits",
    "fit_input",
    "load",
    "split_indices",
    "take_rows",
]

DATA_DIR = Path(__file__).parent / "builtin"
#: rows copied at a time from a memory-mapped array
CHUNK_ROWS = 65536
ROLES = ("x", "y", "lengths", "weights")


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


# -- shaping, splitting -----------------------------------------------------------


def fit_input(x, n_in, recurrent, where="x"):
    """``x`` shaped for a model with ``n_in`` input features.

    A model reading sequences reads ``(batch, time, features)``; a 2-D array
    (a CSV file, flattened sequences) is read as ``(batch, time * features)``,
    time step after time step, and reshaped (memory maps stay memory maps).
    ``recurrent`` is whether the model reads sequences, or the
    :class:`~trainkit.layers.Shape` of its input (``net.structure.in_shape``):
    then a model reading images ``(H, W, C)`` takes ``(batch, H W C)`` rows
    (C order) or ``(batch, H, W)`` arrays of one channel, and a model reading
    token ids takes its ``(batch, time)`` array as it is.
    """
    kind = getattr(recurrent, "kind", None)
    if kind == "tokens":
        return x
    if kind == "image":
        dims = tuple(recurrent.dims)
        if x.ndim == 2 and x.shape[1] == int(np.prod(dims)):
            return x.reshape(len(x), *dims)
        if x.ndim == 3 and dims[2] == 1 and x.shape[1:] == dims[:2]:
            return x.reshape(*x.shape, 1)
        return x
    if kind is not None:
        recurrent = kind == "sequence"
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
