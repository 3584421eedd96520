"""Reading ``.npz`` files without trusting them.

An ``.npz`` file is a zip of ``.npy`` members. Its central directory declares
each member's compressed and uncompressed size, and each member's first bytes
(the ``.npy`` header) declare a shape and a dtype; :func:`survey` checks that
all of these agree with each other and with the size of the file *before*
any array is allocated or any member decompressed, so a crafted or damaged
file (a zip bomb, a header claiming a ``(10**6, 10**6)`` array, a truncated
copy) is refused in one line instead of exhausting memory. Objects (pickles)
are refused from the dtype alone; nothing is ever unpickled.

The limits are :data:`MAX_RATIO` and :data:`RATIO_ALLOWANCE`.
"""

import contextlib
import math
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_RATIO",
    "RATIO_ALLOWANCE",
    "CheckpointError",
    "Member",
    "open_npz",
    "read_member",
    "survey",
]

#: The most a file may expand when its members are decompressed, uncompressed to
#: on-disk bytes. :func:`trainkit.archive.save` stores members uncompressed (1:1) and real
#: weights deflate by less than 2:1, while deflate can reach ~1030:1 on zeros:
#: a limit near that would admit a zip bomb, so files beyond 100:1 are refused
#: before anything is decompressed.
MAX_RATIO = 100
#: Bytes a file may expand to beyond ``MAX_RATIO`` times its size (small arrays
#: of zeros compress far better than 100:1).
RATIO_ALLOWANCE = 1 << 20

# What reading a damaged or crafted archive raises besides ValueError (zipfile raises
# NotImplementedError for a compression method it does not know).
_DAMAGED = (zipfile.BadZipFile, EOFError, KeyError, zlib.error, NotImplementedError, RuntimeError)


class CheckpointError(ValueError):
    """A file that is not a well-formed checkpoint (the message names it).

    ``path`` is the file, ``why`` the reason alone (for callers that word the
    message their own way) and ``kind`` what the file should have been
    (``'checkpoint'``, ``'model file'``).
    """

    def __init__(self, path, why, kind="checkpoint"):
        super().__init__(f"{os.fspath(path)}: not a valid trainkit {kind}: {why}")
        self.path = path
        self.why = str(why)
        self.kind = kind

    def __reduce__(self):
        return type(self), (self.path, self.why, self.kind)


@dataclass(frozen=True)
class Member:
    """One ``.npy`` member as declared, before any of its data is read."""

    info: zipfile.ZipInfo
    shape: tuple
    dtype: np.dtype


def _npy_header(file):
    """``(shape, dtype)`` from the first bytes of an ``.npy`` stream."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(file)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    return tuple(int(n) for n in shape), dtype


def survey(archive, path, size, max_ratio=MAX_RATIO):
    """Check an open zip of ``.npy`` members against its declared sizes.

    Reads the central directory and the first bytes of each member (its
    ``.npy`` header), never the data: every member must be stored or
    deflated, must not declare more compressed bytes than the file holds,
    must hold exactly ``prod(shape) * itemsize`` bytes after its header, and
    must not hold objects (pickles). With ``max_ratio``, the archive may
    expand to at most ``max_ratio * size + RATIO_ALLOWANCE`` bytes, and a
    member beyond ``RATIO_ALLOWANCE`` at most ``max_ratio`` times its
    compressed size.

    Parameters
    ----------
    archive : zipfile.ZipFile
    path : str
        The file, for messages.
    size : int
        The file's size on disk.
    max_ratio : float or None
        The expansion limit; None checks sizes but not ratios.

    Returns
    -------
    dict of str to Member
        By member name without ``.npy``, in the archive's order.

    Raises
    ------
    CheckpointError
        Naming ``path`` and the member.
    """
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise CheckpointError(path, "member names repeat")
    packed = sum(info.compress_size for info in infos)
    if packed > size:
        raise CheckpointError(
            path, f"its members declare {packed} compressed bytes but the file has {size}"
        )
    unpacked = sum(info.file_size for info in infos)
    if max_ratio is not None and unpacked > max_ratio * size + RATIO_ALLOWANCE:
        raise CheckpointError(
            path,
            f"its members would expand {size} bytes to {unpacked} (more than {max_ratio}:1); "
            "refusing to decompress",
        )
    members = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            raise CheckpointError(path, f"member {name!r} is not an .npy array")
        if (
            info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
            or info.flag_bits & 1
        ):
            raise CheckpointError(
                path, f"member {name!r} is encrypted or compressed with an unsupported method"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise CheckpointError(
                path,
                f"member {name!r} declares {info.file_size} bytes but stores {info.compress_size}",
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if max_ratio is not None and info.file_size > RATIO_ALLOWANCE and ratio > max_ratio:
            raise CheckpointError(
                path,
                f"member {name!r} would expand {info.compress_size} bytes to {info.file_size} "
                f"({ratio:.0f}:1, more than {max_ratio}:1); refusing to decompress",
            )
        with archive.open(info) as file:
            try:
                shape, dtype = _npy_header(file)
            except ValueError as error:
                raise CheckpointError(
                    path, f"member {name!r} is not an .npy array ({error})"
                ) from None
            offset = file.tell()
        if dtype.hasobject:
            raise CheckpointError(
                path,
                f"member {name!r} holds Python objects (dtype {dtype}), which could only be "
                "unpickled; trainkit never loads pickled data",
            )
        count = math.prod(shape)
        if dtype.itemsize == 0 and count:
            raise CheckpointError(path, f"member {name!r} has a zero-size dtype {dtype}")
        needed = count * dtype.itemsize
        if offset + needed != info.file_size:
            raise CheckpointError(
                path,
                f"member {name!r} declares shape {shape} of {dtype} ({needed} bytes) but holds "
                f"{info.file_size - offset} bytes",
            )
        members[name[: -len(".npy")]] = Member(info, shape, dtype)
    return members


def read_member(archive, member):
    """The array of a :class:`Member` that :func:`survey` checked."""
    with archive.open(member.info) as file:
        return np.lib.format.read_array(file, allow_pickle=False)


@contextlib.contextmanager
def open_npz(path, max_ratio=MAX_RATIO):
    """Open an ``.npz`` file and survey it: ``(zipfile, {name: Member})``.

    Raises FileNotFoundError for a missing file and :class:`CheckpointError`
    for anything that is not a sound zip of ``.npy`` arrays (see
    :func:`survey`); damage found while reading members later is raised as
    the zipfile/zlib error, which :func:`load` turns into CheckpointError.
    """
    with open(path, "rb") as file:  # FileNotFoundError names the path
        start = file.read(4)
        if start not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise CheckpointError(path, "not a zip (.npz) archive")
        file.seek(0)
        try:
            archive = zipfile.ZipFile(file)
        except _DAMAGED + (ValueError, OSError) as error:
            why = f"damaged or truncated ({type(error).__name__}: {error})"
            raise CheckpointError(path, why) from None
        with archive:
            try:
                members = survey(archive, path, os.fstat(file.fileno()).st_size, max_ratio)
            except CheckpointError:
                raise
            except _DAMAGED + (ValueError, OSError) as error:
                raise CheckpointError(path, f"{type(error).__name__}: {error}") from None
            yield archive, members
