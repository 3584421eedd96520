"""The learning rate of a run: a shared variable that a schedule rewrites between updates.

Nothing recompiles when the rate changes: the optimizer reads
``LearningRate.variable``, and :meth:`LearningRate.set` writes
``schedule.value(step)`` into it before each update. A run whose length the
schedule needs (``cosine``) gets its schedule built when the data, and so
the number of updates per epoch, is known (:meth:`LearningRate.for_run`).

>>> from trainkit.training.spec import parse
>>> rate = LearningRate(parse("adam", learning_rate=0.1, lr_warmup=2), "float32")
>>> rate.for_run(updates_per_epoch=10)
>>> [rate.set(step) or round(float(rate.variable.get_value()), 3) for step in range(3)]
[0.05, 0.1, 0.1]
"""

import numpy as np
import pytensor
from pytensor.compile.sharedvalue import SharedVariable

from . import build

__all__ = ["LearningRate"]


class LearningRate:
    """The learning-rate variable and schedule of one trainer.

    Parameters
    ----------
    spec : TrainingSpec
        The parsed keywords: ``learning_rate`` (a number or a shared
        variable), ``lr_schedule``, ``lr_warmup``, ``max_updates``,
        ``max_epochs``.
    dtype : str
        The parameters' dtype, which the variable takes.

    Attributes
    ----------
    variable : SharedVariable or None
        What the optimizer reads (None when the algorithm has no learning rate).
    base : float or None
        The rate given.
    schedule : Schedule or None
        The schedule of the current run.
    """

    def __init__(self, spec, dtype):
        self.options = spec.options
        given = spec.learning_rate
        self.variable = self.base = self.schedule = None
        if isinstance(given, SharedVariable):
            self.variable, self.base = given, float(given.get_value())
        elif given is not None:
            self.base = float(given)
            self.variable = pytensor.shared(
                np.asarray(given, dtype=dtype), name="trainer/learning_rate"
            )
        self._set = None
        self._start = None
        if self.variable is not None:
            # checked now with a placeholder length; built for the run by for_run
            self.for_run(10**6)

    def for_run(self, updates_per_epoch):
        """Build the schedule for a run whose epochs make this many updates.

        Schedules that need the run's length (``cosine``) get ``max_updates``,
        or ``max_epochs`` times the updates per epoch. A ``Schedule`` object
        the user gave starts afresh in every run.
        """
        self._set = None
        if self.variable is None:
            return
        o = self.options
        total = o.max_updates
        if total is None and o.max_epochs is not None and updates_per_epoch:
            total = o.max_epochs * updates_per_epoch
        schedule = build(o.lr_schedule, self.base, warmup=o.lr_warmup, total_steps=total)
        if schedule is o.lr_schedule:
            if self._start is None:
                self._start = schedule.state()
            schedule.set_state(self._start)
        self.schedule = schedule

    def set(self, step):
        """Write the rate of update ``step`` (0-based) into the variable."""
        if self.variable is None:
            return
        rate = self.schedule.value(step)
        if rate != self._set:  # set_value costs more than the comparison
            self.variable.set_value(np.asarray(rate, dtype=self.variable.dtype))
            self._set = rate

    def value(self):
        """The rate of the last update, as a float (NaN without a learning rate)."""
        return float(self.variable.get_value()) if self.variable is not None else float("nan")
