"""Safe, atomic files for models and checkpoints.

A file is one ``.npz`` archive (a zip of ``.npy`` members) holding

- ``header``: a 0-d unicode array with the JSON text
  ``{"format": "trainkit", "version": 1, "names": [...], "meta": {...}}``;
- ``a0``, ``a1``, ...: the arrays, in the order of ``names``, so any name
  (``'hid1.w/adam_m'``, ``'hidden_dropout/rng'``, ``'x[0]:y'``) round-trips
  exactly whatever characters it holds.

Nothing is pickled: :func:`load` refuses object arrays from their declared
dtype, so a crafted file can fail to load but cannot run code, and it checks
every declared size before allocating anything (:mod:`trainkit.npzfile`), so
it cannot exhaust memory either. :func:`save` writes a temporary file
``.<name>.<hex>.tmp`` next to the target, flushes and fsyncs it, renames it
over the target with :func:`os.replace` and fsyncs the directory, so the
target is always either the old complete file or the new complete one, even
if the process is killed mid-write; the temporaries a killed writer leaves
are removed by the next save of the same target (:func:`remove_stale`).

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
import re
import secrets
import stat
from collections.abc import Mapping

import numpy as np

from .npzfile import _DAMAGED, MAX_RATIO, RATIO_ALLOWANCE, CheckpointError, open_npz, read_member

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be removed there anyway
    fcntl = None

__all__ = [
    "FORMAT",
    "MAX_RATIO",
    "RATIO_ALLOWANCE",
    "VERSION",
    "CheckpointError",
    "load",
    "open_npz",
    "read_meta",
    "remove_stale",
    "save",
]

FORMAT = "trainkit"
VERSION = 1
_HEADER = "header"


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (POSIX; a no-op where unsupported)."""
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(fd):
    """Take the writer's lock on an open temporary; False if someone holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock: treat the file as in use
        return False
    return True


def _create_temporary(directory, base):
    """Create, open and lock a new file in ``directory``: (fd, path).

    Like :func:`tempfile.mkstemp` (exclusive creation of a random name) but
    with mode 0o666 filtered by the umask, so the file that replaces the
    target gets the permissions any newly written file would, not 0o600.
    The file stays locked (``flock``) while its writer lives, which is how
    :func:`remove_stale` tells a killed writer's leftovers from a live one.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        if _lock(fd) and os.fstat(fd).st_nlink:
            return fd, path
        os.close(fd)  # a concurrent remove_stale took it before we locked it
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def remove_stale(path):
    """Remove temporaries of ``path`` that killed writers left behind.

    A temporary of ``path`` is named ``.<name>.<12 hex digits>.tmp`` beside
    it. Only those of this target are considered, and only when no live
    writer holds their lock (POSIX ``flock``; on Windows a file still open
    cannot be removed, so the attempt fails quietly). :func:`save` calls this
    first, so a run killed with ``kill -9`` leaves at most one stale
    temporary per target, until its next save.

    Returns
    -------
    list of str
        The files removed.
    """
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(re.escape(f".{base}.") + r"[0-9a-f]{12}\.tmp\Z")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    for name in names:
        if not pattern.match(name):
            continue
        candidate = os.path.join(directory, name)
        try:
            fd = os.open(candidate, flags)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd):
                os.unlink(candidate)
                removed.append(candidate)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _writable_directory(path, directory):
    """Say, naming ``path``, why ``directory`` cannot take it (before writing anything)."""
    if not os.path.exists(directory):
        raise FileNotFoundError(f"{path}: cannot save: the directory {directory} does not exist")
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"{path}: cannot save: {directory} is not a directory")


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
    FileNotFoundError, NotADirectoryError, PermissionError
        Naming ``path``, when its directory is missing or cannot be written.
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
    _writable_directory(path, directory)
    remove_stale(path)
    try:
        fd, temporary = _create_temporary(directory, base)
    except OSError as error:
        if not error.strerror:
            raise
        raise type(error)(f"{path}: cannot save: {error.strerror.lower()} ({directory})") from None
    lock = os.dup(fd)  # the lock lives until the rename is done, not just the write
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
    finally:
        os.close(lock)
    _fsync_directory(directory)


def _plain(value):
    """JSON fallback: numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def load(path, expect=None, kind="checkpoint"):
    """Read what :func:`save` wrote: ``(arrays, meta)``.

    Every declared size is checked before anything is allocated (see
    :func:`survey`, with the expansion limit :data:`MAX_RATIO`).

    Parameters
    ----------
    path : str or os.PathLike
        The file, used exactly as given.
    expect : callable, optional
        ``expect(meta, specs)``, with ``specs`` ``{name: (shape, dtype)}`` as
        declared, is called before any array is read; it raises (ValueError)
        to refuse the file, e.g. when the shapes do not fit what ``meta``
        describes.
    kind : str
        What the file should be, for messages (``'model file'``).

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
        not a zip archive, truncated, sizes that do not add up, members that
        expand beyond the limit, no or bad header, object (pickled) arrays,
        names that do not match the arrays, or what ``expect`` refuses.
    """
    path = os.fspath(path)
    try:
        return _load(path, expect)
    except CheckpointError as error:
        if error.kind == kind:
            raise
        raise CheckpointError(error.path, error.why, kind) from error.__cause__


class _Peek(Exception):
    """Carries ``(meta, specs)`` out of :func:`load` before any array is read."""


def read_meta(path, kind="model file or checkpoint"):
    """``(meta, specs)`` of a file, reading only its header: specs are ``{name: (shape, dtype)}``.

    Every check of :func:`load` short of reading the arrays is made, so it is
    as safe to call on a file from elsewhere.
    """

    def stop(meta, specs):
        raise _Peek(meta, specs)

    try:
        load(path, expect=stop, kind=kind)
    except _Peek as peek:
        return peek.args
    raise AssertionError("unreachable: load calls expect")  # pragma: no cover


def _load(path, expect):
    with open_npz(path) as (archive, members):
        try:
            header = members.get(_HEADER)
            if header is None:
                raise CheckpointError(path, "no 'header' entry")
            if header.dtype.kind != "U" or header.shape != ():
                raise CheckpointError(path, f"header is a {header.dtype} array, not a string")
            try:
                header = json.loads(str(read_member(archive, header)))
            except ValueError as error:
                raise CheckpointError(path, f"header is not JSON ({error})") from None
            names, meta = _check_header(path, header)
            keys = [f"a{i}" for i in range(len(names))]
            if sorted(members) != sorted([_HEADER, *keys]):
                raise CheckpointError(
                    path,
                    f"the header names {len(names)} arrays but the file holds "
                    f"{', '.join(sorted(m for m in members if m != _HEADER)) or 'none'}",
                )
            if expect is not None:
                specs = {
                    n: (members[k].shape, members[k].dtype)
                    for n, k in zip(names, keys, strict=True)
                }
                expect(meta, specs)
            arrays = {n: read_member(archive, members[k]) for n, k in zip(names, keys, strict=True)}
        except CheckpointError:
            raise
        except ValueError as error:
            raise CheckpointError(path, error) from error
        except _DAMAGED as error:
            raise CheckpointError(path, f"{type(error).__name__}: {error}") from error
    return arrays, meta


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_JSON_KINDS[type(None)] = "null"


def _check_header(path, header):
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(path, f"the header is not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise CheckpointError(path, f"unsupported version {header.get('version')!r}")
    missing = [key for key in ("names", "meta") if key not in header]
    if missing:
        raise CheckpointError(path, f"the header has no {' or '.join(missing)}")
    names, meta = header["names"], header["meta"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(path, "the header's names are not a list of strings")
    if len(set(names)) != len(names):
        raise CheckpointError(path, "the header's names repeat")
    if not isinstance(meta, dict):
        kind = _JSON_KINDS.get(type(meta), type(meta).__name__)
        raise CheckpointError(path, f"meta is a JSON {kind}, not an object")
    return names, meta
