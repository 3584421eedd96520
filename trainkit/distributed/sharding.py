"""Which rows of a global batch each rank computes on.

Rank ``r`` of ``size`` takes the contiguous rows ``[n·r // size, n·(r+1) // size)``
of every global batch of ``n`` rows: deterministic, every row on exactly one
rank, shard sizes differing by at most one, and the last (partial) batch of
an epoch split the same way. A rank whose share of a small batch is empty
computes nothing for it and contributes a zero weight.

>>> [shard_slice(5, r, 2) for r in range(2)]
[slice(0, 2, None), slice(2, 5, None)]
>>> [len(shard_rows([np.arange(1)], r, 2)[0]) for r in range(2)]
[0, 1]
"""

import numpy as np

__all__ = ["shard_rows", "shard_slice"]


def shard_slice(n, rank, size):
    """The slice of ``n`` rows that ``rank`` of ``size`` computes on."""
    return slice(n * rank // size, n * (rank + 1) // size)


def shard_rows(batch, rank, size):
    """``rank``'s rows of every array of ``batch`` (a list of arrays, batch axis first)."""
    if size == 1:
        return batch
    rows = shard_slice(len(batch[0]), rank, size)
    return [np.ascontiguousarray(a[rows]) for a in batch]
