"""One update of a run, and the training metrics it adds up.

:func:`update` draws a batch and runs the one-function step (the fast
path), or hands the split step to :func:`split_update` with a communicator
(the identity one on one process): it draws up to ``accumulate`` batches into
the accumulators, meets the other processes between the halves when there
are any, and applies (an update never spans an epoch boundary). Non-finite
batches go to the trainer's ``nan_policy``.

:class:`MetricWindow` sums each update's training metrics until the next
validation reports their means; its state travels in checkpoints.

>>> window = MetricWindow()
>>> window.add(np.array([1.0, 2.0])); window.add(np.array([3.0, 4.0]))
>>> dict(window.means(["loss", "base"]))
{'loss': 2.0, 'base': 3.0}
"""

import math
from collections import OrderedDict

import numpy as np

from ..distributed import Identity, shard_rows

__all__ = ["MetricWindow", "split_update", "update"]


class MetricWindow:
    """Training metrics summed since the last validation."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.sums = None
        self.count = 0

    def add(self, values):
        self.sums = np.array(values, dtype=np.float64) if self.sums is None else self.sums + values
        self.count += 1

    def means(self, names):
        """The mean of each metric over the window (NaN when nothing was added)."""
        if not self.count:
            return OrderedDict((name, math.nan) for name in names)
        return OrderedDict(zip(names, map(float, self.sums / self.count), strict=True))

    def state(self):
        """The sums and their count, JSON-ready (what a checkpoint keeps)."""
        return {
            "sums": None if self.sums is None else [float(v) for v in self.sums],
            "count": self.count,
        }

    def set_state(self, state):
        """Continue from :meth:`state`; a count that is not a count raises ValueError."""
        sums, count = state["sums"], state["count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"window_count is {count!r}, not a count")
        self.sums = None if sums is None else np.asarray(sums, np.float64)
        self.count = count


def update(trainer):
    """Make one update of ``trainer`` (the step counter is the caller's).

    The one-function step is the fast path; the split step goes through
    :func:`split_update` with the trainer's communicator (the identity one
    when it has none).
    """
    step, data = trainer.compiled, trainer.dataset
    if step.split:
        split_update(trainer, trainer.communicator or Identity())
        return
    epoch, index = data.epoch, data.batch_index
    finite, values = step.update(data.next_batch())
    if finite:
        trainer.record(values)
    else:
        trainer.non_finite(epoch, index)


def split_update(trainer, comm):
    """One update of the split step: up to ``accumulate`` batches' gradients, then apply.

    On one process (``comm.size == 1``) each batch's gradients go into the
    accumulators, a non-finite batch adding nothing, and the training
    metrics are the mean over the batches accumulated. On several, each
    process keeps its shard of every batch, the non-finite flag of each
    batch is agreed as it is computed (``accumulate > 1``; a process whose
    own shard was finite takes that batch back out) or by the update's
    all-reduce, which also sums the accumulators, the weights, the weighted
    metrics and the stop requests (:mod:`~trainkit.training.parallel`); the
    training metrics are then means weighted by the batches' weights. An
    update never spans an epoch boundary.
    """
    step, o, dataset = trainer.compiled, trainer.options, trainer.dataset
    alone = comm.size == 1
    # one process sums the metrics as they come; several sum w * values in float64
    sums = None if alone else np.zeros(len(step.batch_names))
    count, local_bad = 0, False
    epoch0 = dataset.epoch
    for _ in range(o.accumulate):
        epoch, index = dataset.epoch, dataset.batch_index
        shard = shard_rows(dataset.next_batch(), comm.rank, comm.size)
        saved = step.snapshot() if o.accumulate > 1 and not alone else None
        finite, values, weight = True, None, 1.0
        try:
            if len(shard[0]) or step.sync is not None:  # global batchnorm: every process
                finite, values = step.gradients(shard)
                if not alone:
                    weight = step.last_weight
        except BaseException:
            step.clear()  # nothing half-accumulated survives an error
            raise
        if o.accumulate > 1:
            bad = comm.any(not finite)  # agreed batch by batch
            if bad:
                if finite:
                    step.restore(saved)
                try:
                    trainer.non_finite(epoch, index)
                except FloatingPointError:
                    step.clear()
                    raise
            else:
                count += 1
                if values is not None:
                    sums = _add(sums, values, weight, alone)
        else:
            local_bad = not finite  # agreed by the update's all-reduce
            if finite and values is not None:
                sums = _add(sums, values, weight, alone)
        if dataset.epoch > epoch0 or dataset.exhausted or trainer.stop_reason:
            break  # an update never spans an epoch boundary
    if alone:
        bad = local_bad
    else:
        progress = trainer.progress
        flags = [float(local_bad), float(progress.stop_request is not None)]
        n = len(sums)
        reduced = step.reduce(np.concatenate([sums, flags, progress.signal_flags()]))
        sums, (bad, stop, *signals) = reduced[:n], reduced[n:]
        progress.agree_on_stop(stop, signals)
        total = step.weight  # every process's, after the reduce
    if o.accumulate == 1:
        if bad:
            step.clear()
            trainer.non_finite(epoch, index)
        else:
            count = 1
    if alone:
        total = count
    if not count:
        step.clear()
        return
    # as with one process, a zero total weight makes apply report non-finite
    finite, extras = step.apply()
    if finite:
        trainer.record(np.concatenate([sums / total, extras]))
    else:
        trainer.non_finite(epoch, index)


def _add(sums, values, weight, alone):
    if alone:
        return values if sums is None else sums + values
    return sums + weight * values
