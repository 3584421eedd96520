"""Batches for training: a position over a source, shuffled batches, exact resume.

A :class:`Dataset` cuts batches from a source (:mod:`trainkit.data.sources`:
arrays, memory-mapped ``.npy`` files included, a batch-making callable, or an
iterable of batches), casting each batch to the model's dtypes. Its position
is a few integers (:meth:`Dataset.state`), so training resumes on exactly the
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

from collections.abc import Mapping

import numpy as np

from regularizers.errors import listing

from .arrays import ArraySpec, _check_int, _check_specs  # noqa: F401  (ArraySpec: doctest)
from .sources import source_for

__all__ = ["Dataset"]


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
        What the source is (``source_object``: the :mod:`~trainkit.data.sources` class
        that serves it).
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
        self.source_object = source_for(source, self.specs, name, self.batch_size, self.epoch_size)
        self.epoch = self.batch_index = self.drawn = 0

    kind = property(lambda self: self.source_object.kind)
    one_shot = property(lambda self: self.source_object.one_shot)
    n_examples = property(lambda self: self.source_object.n_examples)
    batches_per_epoch = property(lambda self: self.source_object.batches_per_epoch)

    @property
    def arrays(self):
        """The arrays of an array source as held (memmaps stay memmaps), else None."""
        return self.source_object.arrays

    @property
    def exhausted(self):
        """True once a one-shot iterator has given its last batch."""
        return getattr(self.source_object, "exhausted", False)

    def __repr__(self):
        return (
            f"Dataset({self.name!r}, {self.kind}, n_examples={self.n_examples}, "
            f"batch_size={self.batch_size}, batches_per_epoch={self.batches_per_epoch}, "
            f"epoch={self.epoch}, batch_index={self.batch_index})"
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

    def next_batch(self):
        """Draw the next training batch and advance the position.

        Returns
        -------
        list of ndarray
            One batch, cast to the specs' dtypes when specs were given.
        """
        if self.exhausted:
            raise RuntimeError(
                f"{self.name}: the one-shot iterator ran out after {self.drawn} batches; "
                f"pass a list, a re-iterable or a callable with epoch_size to train longer"
            )
        batch, ended = self.source_object.draw(self)
        self.drawn += 1
        self.batch_index += 1
        if self.batch_index == self.batches_per_epoch or (ended and self.epoch_size is None):
            self.epoch, self.batch_index = self.epoch + 1, 0
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
        batch_size = _check_int(
            "batch_size", self.batch_size if batch_size is None else batch_size, 1
        )
        return self.source_object.walk(self, batch_size)

    def state(self):
        """The position, as a JSON-serialisable dict for :meth:`set_state`."""
        source = self.source_object
        return {
            "name": self.name,
            "source": self.kind,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "drawn": self.drawn,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_size": self.batch_size,
            "n_examples": self.n_examples,
            "epoch_size": self.epoch_size,
            "batches_per_epoch": self.batches_per_epoch,
            "calls": getattr(source, "calls", 0),
            "iter_position": getattr(source, "position", 0),
            "exhausted": self.exhausted,
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
        self.source_object.restore(self, state)
        self.seed = int(state["seed"])
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])
        self.drawn = int(state["drawn"])
