"""Training and validation data for one run: held out when asked, checked, batched.

>>> import numpy as np
>>> x, y = np.arange(10.0)[:, None], np.arange(10.0)
>>> train, valid = hold_out([x, y], 0.2, seed=0)
>>> len(train[0]), len(valid[0]), sorted(np.concatenate([train[1], valid[1]])) == list(y)
(8, 2, True)
"""

from collections.abc import Iterator

import numpy as np

from regularizers.errors import InvalidArgument

from .dataset import Dataset

__all__ = ["hold_out", "training_datasets"]


def hold_out(train, fraction, seed):
    """Split array data into training and validation parts (a seeded permutation)."""
    arrays = [train] if isinstance(train, np.ndarray) else train
    if not isinstance(arrays, list | tuple) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise InvalidArgument(
            "valid_fraction",
            "holds out part of array data; give validation data when training data is a "
            "callable or an iterable",
            fraction,
        )
    n = len(arrays[0])
    n_valid = int(round(n * fraction))
    if n_valid < 1 or n_valid >= n:
        left = "no validation" if n_valid < 1 else "no training"
        raise InvalidArgument(
            "valid_fraction", f"{fraction} of {n} examples leaves {left} examples", fraction
        )
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    valid_index, train_index = np.sort(order[:n_valid]), np.sort(order[n_valid:])
    return [a[train_index] for a in arrays], [a[valid_index] for a in arrays]


def training_datasets(train, valid, specs, options):
    """The training and validation :class:`Dataset` of a run, from the trainer's options.

    Without validation data, ``valid_fraction`` holds out part of array
    training data, or else validation walks the training arrays in order.
    """
    o = options
    if valid is None and o.valid_fraction is not None:
        train, valid = hold_out(train, o.valid_fraction, o.seed)
    train_ds = Dataset(
        train,
        specs,
        batch_size=o.batch_size,
        shuffle=o.shuffle,
        seed=o.seed,
        epoch_size=o.epoch_size,
        name="train",
    )
    if valid is None:
        if train_ds.kind != "arrays":
            raise InvalidArgument(
                "valid", "give validation data when training data is a callable or an iterable"
            )
        return train_ds, train_ds  # iter_epoch walks it in order, cast, without moving it
    if callable(valid) or isinstance(valid, Iterator):
        raise InvalidArgument(
            "valid",
            "validation data must be arrays or a list of batches (it is read once per "
            f"validation), got {type(valid).__name__}",
        )
    return train_ds, Dataset(valid, specs, batch_size=o.batch_size, shuffle=False, name="valid")
