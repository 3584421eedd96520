"""Safe, atomic files for models and checkpoints.

A file is one ``.npz`` archive (a zip of ``.npy`` members) holding

- ``header``: a 0-d unicode array with the JSON text
  ``{"format": "trainkit", "version": 1, "names": [...], "meta": {...}}``;
- ``a0``, ``a1``, ...: the arrays, in the order of ``names``, so any name
  (``'hid1.w/adam_m'``, ``'hidden_dropout/rng'``, ``'x[0]:y'``) round-trips
  exactly whatever characters it holds.

Nothing is pickled: :func:`load` reads with ``np.load(allow_pickle=False)``,
so a crafted file can fail to load but cannot run code. :func:`save` writes a
temporary file next to the target, flushes and fsyncs it, renames it over the
target with :func:`os.replace` and fsyncs the directory, so the target is
always either the old complete file or the new complete one, even if the
process is killed mid-write.

>>> import os, tempfile
>>> import numpy as np
>>> from trainkit import archive
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "model")
...     archive.save(path, {"hid1.w/adam_m": np.zeros((2, 3), "float32")}, {"step": 7})
...     arrays, meta = archive.load(path)
...     os.listdir(folder)
['model']
>>> {name: a.shape for name, a in arrays.items()}, meta
({'hid1.w/adam_m': (2, 3)}, {'step': 7})
"""

import json
import os
import secrets
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

__all__ = ["FORMAT", "VERSION", "CheckpointError", "load", "save"]

FORMAT = "trainkit"
VERSION = 1
_HEADER = "header"
# What reading a damaged or crafted archive raises besides ValueError (zipfile raises
# NotImplementedError for a compression method it does not know).
_DAMAGED = (zipfile.BadZipFile, EOFError, KeyError, zlib.error, NotImplementedError, RuntimeError)


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (POSIX; a no-op where unsupported)."""
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(directory, base):
    """Create and open a new file in ``directory``: (fd, path).

    Like :func:`tempfile.mkstemp` (exclusive creation of a random name) but
    with mode 0o666 filtered by the umask, so the file that replaces the
    target gets the permissions any newly written file would, not 0o600.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def save(path, arrays, meta=None):
    """Write named arrays and a JSON object to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write, used exactly as given (no suffix is added; use
        ``'.npz'`` if you want one). An existing file is replaced.
    arrays : mapping of str to array_like
        The arrays; names may hold any characters.
    meta : dict, optional
        JSON-serialisable data (numbers, strings, lists, dicts with string
        keys, None, booleans; numpy scalars are stored as Python numbers). It
        comes back as JSON gives it back: tuples as lists, non-string keys as
        strings; NaN and infinities are kept.

    Raises
    ------
    TypeError
        For a name that is not a string, ``meta`` that is not a dict, or
        ``meta`` that JSON cannot encode.
    ValueError
        For an object array (it could only be stored pickled).
    """
    path = os.fspath(path)
    if not isinstance(arrays, Mapping):
        raise TypeError(f"save: arrays must be a mapping of name -> array; got {type(arrays)}")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise TypeError(f"save: meta must be a dict; got {type(meta).__name__}")
    names, payload = [], {}
    for i, (name, value) in enumerate(arrays.items()):
        if not isinstance(name, str):
            raise TypeError(f"save: array names must be strings; got {name!r}")
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise ValueError(
                f"save: array {name!r} has dtype {value.dtype}, which could only be stored "
                "pickled; use a numeric, boolean or string dtype"
            )
        names.append(name)
        payload[f"a{i}"] = value
    header = {"format": FORMAT, "version": VERSION, "names": names, "meta": meta}
    try:
        text = json.dumps(header, default=_plain)
    except (TypeError, ValueError) as error:
        raise TypeError(f"save: meta must be JSON-serialisable: {error}") from None
    payload[_HEADER] = np.array(text)

    directory, base = os.path.split(os.path.abspath(path))
    fd, temporary = _create_temporary(directory, base)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **payload)  # a file object: np.savez adds no suffix
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _plain(value):
    """JSON fallback: numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class CheckpointError(ValueError):
    """A file that is not a well-formed checkpoint (the message names it)."""


def _malformed(path, why):
    return CheckpointError(f"{path!r} is not a valid trainkit checkpoint: {why}")


def load(path):
    """Read what :func:`save` wrote: ``(arrays, meta)``.

    Parameters
    ----------
    path : str or os.PathLike
        The file, used exactly as given.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        In the order they were saved.
    meta : dict

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        A ValueError naming the file, for anything but a well-formed checkpoint:
        not a zip archive, truncated, no or bad header, object (pickled)
        arrays, names that do not match the arrays.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:  # FileNotFoundError names the path
        if file.read(4) != b"PK\x03\x04":
            raise _malformed(path, "not a zip (.npz) archive")
        file.seek(0)
        try:
            with np.load(file, allow_pickle=False) as archive:
                members = list(archive.files)
                if _HEADER not in members:
                    raise _malformed(path, "no 'header' entry")
                header = archive[_HEADER]
                if header.dtype.kind != "U" or header.shape != ():
                    raise _malformed(path, f"header is a {header.dtype} array, not a string")
                try:
                    header = json.loads(str(header))
                except ValueError as error:
                    raise _malformed(path, f"header is not JSON ({error})") from None
                names, meta = _check_header(path, header)
                keys = [f"a{i}" for i in range(len(names))]
                if sorted(members) != sorted([_HEADER, *keys]):
                    raise _malformed(
                        path,
                        f"the header names {len(names)} arrays but the file holds "
                        f"{', '.join(sorted(m for m in members if m != _HEADER)) or 'none'}",
                    )
                arrays = {name: archive[key] for name, key in zip(names, keys, strict=True)}
        except CheckpointError:
            raise
        except ValueError as error:  # e.g. "Object arrays cannot be loaded ..."
            raise _malformed(path, error) from error
        except _DAMAGED as error:
            raise _malformed(path, f"{type(error).__name__}: {error}") from error
    return arrays, meta


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_JSON_KINDS[type(None)] = "null"


def _check_header(path, header):
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _malformed(path, f"the header is not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise _malformed(path, f"unsupported version {header.get('version')!r}")
    missing = [key for key in ("names", "meta") if key not in header]
    if missing:
        raise _malformed(path, f"the header has no {' or '.join(missing)}")
    names, meta = header["names"], header["meta"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _malformed(path, "the header's names are not a list of strings")
    if len(set(names)) != len(names):
        raise _malformed(path, "the header's names repeat")
    if not isinstance(meta, dict):
        kind = _JSON_KINDS.get(type(meta), type(meta).__name__)
        raise _malformed(path, f"meta is a JSON {kind}, not an object")
    return names, meta
