"""How far a run has come, and why it ended: the one owner of a run's counters.

:class:`Progress` holds what the loop counts and decides: ``step`` (updates
made or skipped), ``skipped`` (updates skipped as non-finite), ``elapsed``
(seconds of training), ``validated_at`` (the step last validated),
``stop_reason`` and ``diverged``, ``best_metrics`` (the metrics of the best
validation), ``restored_step`` (the step whose parameters ``restore_best``
put back), ``last_loss`` and ``last_valid``, and the interruption: the
signal that interrupted this process (``interrupted``), a stop asked for
here and not yet agreed on by every process (``stop_request``), the
interruption every process agreed on (``agreed_interruption``).

Like every part of a run that a checkpoint holds (early stopping, the
metric window, the schedule, the dataset), it gives its state as JSON-ready
values with :meth:`Progress.state` and takes it back with
:meth:`Progress.set_state`.

How a run ends is decided here too:

- :func:`check_limits` refuses, before anything is compiled, a run that
  could never end; :meth:`Progress.limit_reached` says which limit
  (``max_updates``, ``max_epochs``, one-shot data running out, a resumed
  run's spent patience) ends it, and :func:`planned_updates` how many
  updates the limits allow, when known.
- :meth:`Progress.non_finite` applies ``nan_policy`` to an update whose
  loss or gradient was not finite: raise, or count it as skipped and, with
  ``'stop'``, end the run.
- At the end, :meth:`Progress.judge` marks a run that stopped on a
  non-finite value, or skipped more than :data:`DIVERGED_SHARE` of its
  batches, as diverged (and logs a warning).

Early stopping and :meth:`~trainkit.Trainer.stop` end a run too, through
:meth:`Progress.end`.

>>> progress = Progress()
>>> progress.step, progress.skipped = 4, 1
>>> progress.end("max_updates=4 reached"); progress.end("later reasons are ignored")
>>> progress.stop_reason
'max_updates=4 reached'
>>> again = Progress(); again.set_state(progress.state()); again.step, again.skipped
(4, 1)
"""

import logging
import math
from collections import OrderedDict

__all__ = ["DIVERGED_SHARE", "SIGNALS", "Progress", "check_limits", "planned_updates"]

#: a run that skipped more than this share of its batches as non-finite diverged
DIVERGED_SHARE = 0.5

logger = logging.getLogger("trainkit")

#: the interruptions an update's all-reduce counts, in the order of :meth:`Progress.signal_flags`
SIGNALS = ("SIGINT", "SIGTERM", "other_signal")


class Progress:
    """A run's counters, its ending and its interruption (see the module's notes)."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Forget everything: a new run starts at step 0."""
        self.step = 0
        self.skipped = 0
        self.elapsed = 0.0
        self.validated_at = None
        self.stop_reason = None
        self.diverged = False
        self.best_metrics = None
        self.restored_step = None
        self.last_loss = math.nan
        self.last_valid = None
        #: the signal that interrupted training ('SIGINT', 'SIGTERM'), or None
        self.interrupted = None
        #: data parallel: a stop asked for on this process, until all agree on it
        self.stop_request = None
        #: data parallel: the interruption every process agreed on
        self.agreed_interruption = None

    def end(self, reason):
        """Stop after this update: a decision every process has taken alike."""
        if self.stop_reason is None:
            self.stop_reason = str(reason)

    def request_stop(self, reason):
        """Ask to stop (data parallel): the next update's all-reduce tells every process."""
        if self.stop_request is None:
            self.stop_request = str(reason)

    def limit_reached(self, options, dataset, early_stopping):
        """The reason a limit ends the run now, or None."""
        o = options
        if o.max_updates is not None and self.step >= o.max_updates:
            return f"max_updates={o.max_updates} reached"
        if o.max_epochs is not None and dataset.epoch >= o.max_epochs:
            return f"max_epochs={o.max_epochs} reached"
        if dataset.exhausted:
            return "training data exhausted"
        # a resumed run whose patience had already run out (the count is in its checkpoint)
        bad = early_stopping.bad_validations
        if o.patience is not None and bad > 0 and bad >= o.patience:
            return f"no improvement in {bad} validations (patience={o.patience})"
        return None

    def non_finite(self, policy, epoch, index):
        """Apply ``nan_policy`` ``policy`` to a non-finite update of batch ``index`` in
        ``epoch``: raise FloatingPointError, or count a skip (and end, with ``'stop'``)."""
        where = f"update {self.step + 1} (epoch {epoch + 1}, batch {index + 1})"
        if policy == "raise":
            raise FloatingPointError(
                f"non-finite loss or gradient at {where}; parameters were left as they were "
                f"before it (nan_policy='raise'; 'skip' or 'stop' to continue or end)"
            )
        self.skipped += 1
        if policy == "stop":
            self.end(f"non-finite loss or gradient at {where} (nan_policy='stop')")

    def judge(self, policy, drawn):
        """Mark a run that stopped on, or mostly skipped, non-finite values as diverged
        (``policy``: its ``nan_policy``; ``drawn``: the batches it drew)."""
        drawn = max(drawn, 1)
        if policy == "stop" and self.stop_reason.startswith("non-finite"):
            self.diverged = True
        elif self.skipped > DIVERGED_SHARE * drawn:
            self.diverged = True
            self.stop_reason = (
                f"{self.stop_reason}; diverged: {self.skipped} of {drawn} batches were skipped "
                f"as non-finite (nan_policy='skip')"
            )
        if self.diverged:
            logger.warning("training diverged: %s", self.stop_reason)

    def signal_flags(self):
        """This process's interruption as the flags an update's all-reduce sums
        (:data:`SIGNALS`: SIGINT, SIGTERM, another signal)."""
        name = self.interrupted
        return [
            float(name == "SIGINT"),
            float(name == "SIGTERM"),
            float(name is not None and name not in ("SIGINT", "SIGTERM")),
        ]

    def agree_on_stop(self, stop, signals):
        """Turn the all-reduced stop requests into the same ``stop_reason`` on every process.

        ``stop`` counts the processes that asked to stop, ``signals`` those
        interrupted by each of :data:`SIGNALS` (the sums of
        :meth:`signal_flags`).
        """
        if stop <= 0 or self.stop_reason is not None:
            return
        names = [n for n, count in zip(SIGNALS, signals, strict=True) if count > 0]
        if names:
            mine = self.interrupted
            self.agreed_interruption = mine or (
                names[0] if names[0] != "other_signal" else "signal"
            )
            if self.interrupted is None:
                self.interrupted = self.agreed_interruption
        reason = self.stop_request or "stop requested on another process"
        if self.stop_request is None and names:
            reason = f"interrupted by {self.agreed_interruption} on another process"
        self.end(reason)

    def was_interrupted(self, parallel):
        """The interruption every process agrees on (this one's when ``parallel`` is false)."""
        return self.agreed_interruption if parallel else self.interrupted

    def state(self):
        """What a checkpoint keeps: the counters, the time and the best validation's metrics."""
        return {
            "step": self.step,
            "skipped": self.skipped,
            "elapsed": self.elapsed,
            "validated_at": self.validated_at,
            "best_metrics": None
            if self.best_metrics is None
            else [list(m.items()) for m in self.best_metrics],
        }

    def set_state(self, state):
        """Continue from :meth:`state`; a count that is not a count raises ValueError."""
        for key in ("step", "skipped"):
            value = state[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} is {value!r}, not a count")
        self.step = state["step"]
        self.skipped = state["skipped"]
        self.elapsed = state["elapsed"]
        self.validated_at = state["validated_at"]
        best = state.get("best_metrics")
        self.best_metrics = None if best is None else tuple(OrderedDict(m) for m in best)


def check_limits(options, dataset):
    """Raise ValueError when nothing would end a run on ``dataset`` with ``options``."""
    if (
        options.max_updates is None
        and options.max_epochs is None
        and options.patience is None
        and not dataset.one_shot
    ):
        raise ValueError(
            "max_updates, max_epochs, patience: all are None, so training would never end; "
            "set at least one"
        )


def planned_updates(options, updates_per_epoch):
    """Total updates a run with ``options`` is set up for, if known (for progress bars)."""
    candidates = []
    if options.max_updates:
        candidates.append(options.max_updates)
    if options.max_epochs and updates_per_epoch:
        candidates.append(options.max_epochs * updates_per_epoch)
    return min(candidates) if candidates else None
