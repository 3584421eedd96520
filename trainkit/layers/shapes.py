r"""Shapes a layer list implies, worked out before any parameter exists.

Every output of a network has a :class:`Shape`: its *kind* and the sizes
of its axes after the batch axis.

================  ==========================  ===================
kind              array                       ``dims``
================  ==========================  ===================
``'features'``    ``(batch, F)``              ``(F,)``
``'sequence'``    ``(batch, time, F)``        ``(F,)``
``'image'``       ``(batch, H, W, C)``        ``(H, W, C)``
``'tokens'``      ``(batch, time)`` int ids   ``()`` (``vocab`` V)
================  ==========================  ===================

The time axis of a sequence is not known until data arrive, so a sequence
shape carries its *timeline* instead: the strided steps (``conv1d`` with a
stride or 'valid' padding, 1-D pooling) applied to the input's time axis
since the input. Two sequences with the same timeline have the same length
and the same real steps; :func:`steps` turns a timeline into a length, for
an int (the padded length, checked when data arrive) or a symbolic vector
(per-example ``lengths``, so masks after strided layers are right).

>>> s = Shape("sequence", (8,))
>>> t = s.strided(("conv", 3, 2, 1))      # kernel 3, stride 2, dilation 1
>>> t, steps(t.timeline, 10), steps(t.timeline, 2)
(sequence(time/conv3s2, 8), 4, 0)
"""

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

__all__ = ["Shape", "KINDS", "steps", "available_memory", "memory_text"]

#: kinds of data a layer may read or make
KINDS = ("features", "sequence", "image", "tokens")

_ARRAYS = {
    "features": "(batch, features)",
    "sequence": "(batch, time, features)",
    "image": "(batch, height, width, channels)",
    "tokens": "(batch, time) token ids",
}


@dataclass(frozen=True)
class Shape:
    """The kind and sizes of one output (see the module docstring)."""

    kind: str
    dims: tuple
    timeline: tuple = ()
    vocab: int = None

    @property
    def width(self):
        """Size of the last (feature or channel) axis; None for token ids."""
        return self.dims[-1] if self.dims else None

    @property
    def ndim(self):
        return {"features": 2, "sequence": 3, "image": 4, "tokens": 2}[self.kind]

    @property
    def has_time(self):
        return self.kind in ("sequence", "tokens")

    def with_width(self, width):
        """This shape with another feature width."""
        return Shape(self.kind, (*self.dims[:-1], int(width)), self.timeline, None)

    def strided(self, step):
        """A sequence shape whose time axis went through one more strided ``step``."""
        return Shape(self.kind, self.dims, (*self.timeline, step), self.vocab)

    def array(self):
        """The array this shape describes, for messages."""
        return _ARRAYS[self.kind]

    def __str__(self):
        if self.kind == "tokens":
            return f"tokens(time, vocab {self.vocab})"
        if self.kind == "sequence":
            time = "time" + "".join(f"/{_step_text(s)}" for s in self.timeline)
            return f"sequence({time}, {self.dims[0]})"
        return f"{self.kind}({', '.join(map(str, self.dims))})"

    __repr__ = __str__

    def text(self):
        """Shape text with the batch axis, for tables: ``(batch, time, 8)``."""
        if self.kind == "tokens":
            return "(batch, time)"
        if self.kind == "sequence":
            return f"(batch, time, {self.dims[0]})"
        return "(batch, " + ", ".join(map(str, self.dims)) + ")"


def _step_text(step):
    what, *args = step
    if what == "conv":
        kernel, stride, dilation = args
        return f"conv{kernel}s{stride}" + (f"d{dilation}" if dilation != 1 else "")
    return f"pool{args[0]}"


def _one(step, n):
    what, *args = step
    if what == "conv":
        kernel, stride, dilation = args
        span = dilation * (kernel - 1) + 1
        if isinstance(n, (int, np.integer)):
            return max((int(n) - span) // stride + 1, 0)
        if isinstance(n, np.ndarray):
            return np.maximum((n - span) // stride + 1, 0)
        return pt.maximum((n - span) // stride + 1, 0)
    return n // args[0]


def steps(timeline, n):
    """Length after ``timeline`` of a time axis of length ``n`` (int or symbolic ints).

    A 'valid' window counts when it lies wholly inside the real steps
    (``floor((n - span) / stride) + 1``, never below 0); a pooling window of
    ``p`` likewise (``floor(n / p)``): the steps of a padded sequence that
    mean something are those a layer would give on the unpadded sequence.
    """
    for step in timeline:
        n = _one(step, n)
    return n


def first_short(timeline, n):
    """(index into ``timeline``, length before it) of the first step that leaves no
    step of a length-``n`` axis, or None."""
    for i, step in enumerate(timeline):
        after = _one(step, n)
        if after < 1:
            return i, n
        n = after
    return None


# -- memory --------------------------------------------------------------------


def available_memory():
    """Bytes of memory this process may still take (None if unknown).

    ``MemAvailable`` of ``/proc/meminfo`` (else the free physical pages),
    capped by a cgroup v2 limit (``memory.max`` less ``memory.current``)
    when one is set.
    """
    found = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            import os

            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            left = max(int(limit) - used, 0)
            found = left if found is None else min(found, left)
    except (OSError, ValueError):
        pass
    return found


def memory_text(n_bytes):
    """``n_bytes`` in words: ``'2.4 GB'``.

    >>> memory_text(2_400_000_000), memory_text(512)
    ('2.4 GB', '512 bytes')
    """
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def param_bytes(shapes, dtype):
    """Bytes that arrays of these shapes take in ``dtype`` (Python ints: no overflow)."""
    item = np.dtype(dtype).itemsize
    return sum(int(np.prod([int(d) for d in s], dtype=object)) for s in shapes) * item
