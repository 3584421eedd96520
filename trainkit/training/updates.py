"""One update of a single-process run, and the training metrics it adds up.

:func:`update` draws a batch and runs the one-function step, or draws up to
``accumulate`` batches into the split step's accumulators and applies them
(an update never spans an epoch boundary). Non-finite batches go to the
trainer's ``nan_policy``. Data-parallel runs use
:func:`trainkit.distributed.training.update` instead, which meets the other
processes between the halves.

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

__all__ = ["MetricWindow", "update"]


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
    """Make one update of ``trainer`` on one process (the step counter is the caller's)."""
    step, data = trainer._step, trainer.dataset
    if not step.split:
        epoch, index = data.epoch, data.batch_index
        finite, values = step.update(data.next_batch())
        if finite:
            trainer.record(values)
        else:
            trainer.non_finite(epoch, index)
        return
    epoch0 = data.epoch
    sums, count = None, 0
    for _ in range(trainer.options.accumulate):
        epoch, index = data.epoch, data.batch_index
        try:
            finite, values = step.gradients(data.next_batch())
            if not finite:
                trainer.non_finite(epoch, index)
        except BaseException:
            step.clear()  # nothing half-accumulated survives an error
            raise
        if finite:
            sums = values if sums is None else sums + values
            count += 1
        if data.epoch > epoch0 or data.exhausted or trainer.stop_reason:
            break  # an update never spans an epoch boundary
    if not count:
        step.clear()
        return
    finite, extras = step.apply()
    if finite:
        trainer.record(np.concatenate([sums / count, extras]))
    else:
        trainer.non_finite(epoch, index)
