"""How a run ends: its limits, non-finite updates, and the bookkeeping at the end.

- :func:`check_limits` refuses, before anything is compiled, a run that
  could never end; :func:`limit_reached` says which limit (``max_updates``,
  ``max_epochs``, one-shot data running out) ends it, and
  :func:`planned_updates` how many updates the limits allow, when known.
- :func:`non_finite` applies ``nan_policy`` to an update whose loss or
  gradient was not finite: raise, or count it as skipped and, with
  ``'stop'``, end the run.
- At the end, :func:`judge` marks a run that stopped on a non-finite value,
  or skipped more than :data:`DIVERGED_SHARE` of its batches, as diverged
  (and logs a warning); :func:`save_final` writes the last checkpoint unless
  the last one already holds that state; :func:`restore_best` puts back the
  best validated parameters (``restore_best``).

Early stopping and :meth:`~trainkit.Trainer.stop` end a run too; they set
``stop_reason`` through the trainer.
"""

import logging

import numpy as np

from . import ema

__all__ = [
    "DIVERGED_SHARE",
    "check_limits",
    "judge",
    "limit_reached",
    "non_finite",
    "planned_updates",
    "restore_best",
    "save_final",
]

#: a run that skipped more than this share of its batches as non-finite diverged
DIVERGED_SHARE = 0.5

logger = logging.getLogger("trainkit")


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


def limit_reached(trainer):
    """The reason a limit ends ``trainer``'s run now, or None."""
    o = trainer.options
    if o.max_updates is not None and trainer.step >= o.max_updates:
        return f"max_updates={o.max_updates} reached"
    if o.max_epochs is not None and trainer.dataset.epoch >= o.max_epochs:
        return f"max_epochs={o.max_epochs} reached"
    if trainer.dataset.exhausted:
        return "training data exhausted"
    # a resumed run whose patience had already run out (the count is in its checkpoint)
    bad = trainer.early_stopping.bad_validations
    if o.patience is not None and bad > 0 and bad >= o.patience:
        return f"no improvement in {bad} validations (patience={o.patience})"
    return None


def planned_updates(trainer):
    """Total updates ``trainer``'s run is set up for, if known (for progress bars)."""
    o = trainer.options
    candidates = []
    if o.max_updates:
        candidates.append(o.max_updates)
    if o.max_epochs and trainer.updates_per_epoch:
        candidates.append(o.max_epochs * trainer.updates_per_epoch)
    return min(candidates) if candidates else None


def non_finite(trainer, epoch, index):
    """Apply ``nan_policy`` to a non-finite update of batch ``index`` in ``epoch``."""
    policy = trainer.options.nan_policy
    where = f"update {trainer.step + 1} (epoch {epoch + 1}, batch {index + 1})"
    if policy == "raise":
        raise FloatingPointError(
            f"non-finite loss or gradient at {where}; parameters were left as they were "
            f"before it (nan_policy='raise'; 'skip' or 'stop' to continue or end)"
        )
    trainer.skipped += 1
    if policy == "stop":
        trainer._end(f"non-finite loss or gradient at {where} (nan_policy='stop')")


def judge(trainer):
    """Mark a run that stopped on, or mostly skipped, non-finite values as diverged."""
    drawn = max(trainer.dataset.drawn, 1)
    if trainer.options.nan_policy == "stop" and trainer.stop_reason.startswith("non-finite"):
        trainer.diverged = True
    elif trainer.skipped > DIVERGED_SHARE * drawn:
        trainer.diverged = True
        trainer.stop_reason = (
            f"{trainer.stop_reason}; diverged: {trainer.skipped} of {drawn} batches were skipped "
            f"as non-finite (nan_policy='skip')"
        )
    if trainer.diverged:
        logger.warning("training diverged: %s", trainer.stop_reason)


def save_final(trainer):
    """Save the state training ends with, unless the last checkpoint already holds it."""
    if trainer.checkpointer is not None and not trainer._final_saved:
        if trainer.checkpointer.saved_step != trainer.step:
            trainer.checkpointer.save(trainer)
        trainer._final_saved = True


def restore_best(trainer):
    """Restore the best validated parameters unless they are the current ones.

    The best validation loss is never above the last one, so the result is
    never worse than the last validated state.
    """
    best = trainer.early_stopping
    if not trainer.options.restore_best or best.best_params is None:
        return
    if best.best_step == trainer.step:
        return
    for name, p in trainer.graph.params.items():
        p.set_value(np.array(best.best_params[name], copy=True))
    for name, var in ema.running_state(trainer).items():  # batchnorm's, of the same step
        if name in best.best_params:
            var.set_value(np.array(best.best_params[name], copy=True))
    trainer.restored_step = best.best_step
