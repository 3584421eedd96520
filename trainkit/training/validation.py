"""One validation pass of a run, the metrics it reports, and what it decides.

:func:`validate` runs the compiled validation function over the validation
data and pairs its metrics with the training metrics gathered since the
previous validation:

- Validation runs the *clean* graph (no noise, no dropout); its ``loss`` is
  the base loss plus the weighted penalties, and early stopping watches it.
  Validation metrics are means over the validation examples: each batch's
  means weighted by its ``batch_weight`` (its number of examples, or the sum
  of its sample weights), so weighted means do not depend on the batch size.
  Order statistics (``min``, ``max``) and ``std`` monitors are averaged over
  batches, an approximation for more than one batch. In data-parallel runs
  each process evaluates its shard of every batch and one all-reduce sums
  the weighted sums (:func:`trainkit.training.parallel.reduce_validation`).
- ``train_metrics`` holds ``step`` (updates so far), ``epoch`` (passes over
  the training data *completed* so far: 0 until the first epoch ends),
  ``lr`` (the learning rate of the last update), ``seconds``, ``skipped``
  (updates skipped as non-finite so far), then the training loss, the
  weighted penalties and the extra metrics, each the mean over the updates
  since the previous validation (skipped updates left out).

The validation loss then goes to early stopping
(:class:`~trainkit.training.early_stopping.EarlyStopping`, which keeps the
best parameters and may end the run) and to the learning-rate schedule
(plateau schedules watch it).
"""

import math
from collections import OrderedDict

import numpy as np

from .. import distributed
from . import ema, parallel

__all__ = ["validate"]


def _valid_metrics(trainer, valid_ds):
    """The validation metrics: means over ``valid_ds``'s examples, by ``batch_weight``."""
    sums, total = None, 0.0
    for batch in valid_ds.iter_epoch():
        if trainer.parallel:
            batch = distributed.shard_rows(
                batch, trainer.communicator.rank, trainer.communicator.size
            )
            if not len(batch[0]):
                continue
        with np.errstate(all="ignore"):  # a non-finite validation loss is reported as such
            weight, *values = trainer.validation_function(*batch)
            weight = float(weight)
            values = np.asarray(values, dtype=np.float64) * weight
        sums = values if sums is None else sums + values
        total += weight
    if trainer.parallel:  # one all-reduce of the weighted sums and the total weight
        sums, total = parallel.reduce_validation(trainer, sums, total)
    return OrderedDict(
        (name, float(v))
        for name, v in zip(trainer.valid_names, sums / (total or math.nan), strict=True)
    )


def validate(trainer, valid_ds):
    """Validate ``trainer``'s current state on ``valid_ds``; return ``(train_metrics,
    valid_metrics)``.

    Clears the metric window, records the step validated, lets early stopping
    and the schedule see the validation loss, and ends the run when early
    stopping says so.
    """
    valid_metrics = _valid_metrics(trainer, valid_ds)
    train_values = trainer.window.means(trainer.train_names)
    train_metrics = OrderedDict(
        step=trainer.step,
        epoch=trainer.dataset.epoch,
        lr=trainer.rate.value(),
        seconds=round(trainer.elapsed, 3),
        skipped=trainer.skipped,
    )
    train_metrics.update(train_values)
    trainer.window.clear()
    trainer.validated_at = trainer.step

    loss = valid_metrics["loss"]
    trainer.early_stopping.observe(loss, trainer.step, lambda: ema.evaluated_params(trainer))
    if trainer.early_stopping.improved:
        trainer.best_metrics = (train_metrics, valid_metrics)
    if trainer.early_stopping.reason:
        trainer.progress.end(trainer.early_stopping.reason)
    if trainer.schedule is not None:
        trainer.schedule.observe(loss)
    trainer.last_valid = valid_metrics
    return train_metrics, valid_metrics
