"""What a run does before its first update: the checks, then the compiling.

:func:`prepare_run` resets the trainer and checks what can be checked before
anything is compiled: the data (shapes, dtypes, NaNs, label ranges, through
:func:`~trainkit.data.split.training_datasets`), that some limit ends the run
(:func:`~trainkit.training.progress.check_limits`) and the ``resume``
checkpoint (model and optimizer, :func:`~trainkit.training.checkpoints.read`).
Along the way it broadcasts rank 0's state in data-parallel runs, restores
the checkpoint and sets up the built-in callbacks (:func:`default_callbacks`).

:func:`compile_functions` then compiles the step
(:class:`~trainkit.training.step.CompiledStep`: one function, or two halves with
``split_update``, ``accumulate > 1`` or more than one process) and the
clean-graph validation function, with the extra metrics and monitors carried
onto the assembled graph.
"""

import sys
from collections import OrderedDict

from ..data.split import training_datasets
from . import checkpoints, metric_names, parallel
from .best_models import BestModels
from .callbacks import LogLines, ProgressBar
from .checkpoints import Checkpointer
from .loggers import LoggerHook
from .progress import check_limits
from .step import CompiledStep, validation_function

__all__ = ["compile_functions", "default_callbacks", "prepare_run"]


def prepare_run(trainer, train, valid):
    """Set ``trainer`` up for a run on ``train`` and ``valid``; return the validation
    dataset and the hooks (built-in callbacks, then the user's)."""
    o = trainer.options
    trainer.reset()
    if trainer.ema is not None:
        trainer.ema.start()
    trainer.dataset, valid_ds = training_datasets(train, valid, trainer.specs, o)
    trainer.rate.for_run(trainer.updates_per_epoch)
    check_limits(o, trainer.dataset)
    if trainer.parallel:
        parallel.broadcast_state(trainer)
    if o.resume is not None:
        checkpoints.apply(trainer, *checkpoints.read(trainer, o.resume), o.resume)
    hooks, trainer.checkpointer = default_callbacks(
        o if trainer.is_writer else parallel.quiet_options(o)
    )
    trainer.loggers = [
        log for hook in hooks if isinstance(hook, LoggerHook) for log in hook.loggers
    ]
    return valid_ds, hooks


def default_callbacks(options):
    """The built-in callbacks the trainer's options ask for, and the checkpointer.

    Returns ``(hooks, checkpointer)``: a progress bar (``progress``; ``'auto'``
    shows it when stderr is a terminal), log lines (``log``), the loggers
    (``loggers``: the metrics file in ``run_dir``, TensorBoard, MLflow, ...), the
    best models' files (``keep_best``) and a :class:`~trainkit.training.checkpoints.Checkpointer`
    (``save_progress``), then the user's ``callbacks``.
    """
    hooks = []
    show = options.progress if options.progress != "auto" else sys.stderr.isatty()
    if show:
        hooks.append(ProgressBar())
    if options.log:
        hooks.append(LogLines())
    logging_hook = LoggerHook(options)
    if logging_hook.loggers:
        hooks.append(logging_hook)
    if options.keep_best is not None and options.run_dir is not None:
        hooks.append(BestModels(options.run_dir, options.keep_best))
    checkpointer = None
    if options.save_progress is not None:
        checkpointer = Checkpointer(options.save_progress, options.save_every)
        hooks.append(checkpointer)
    return hooks + list(options.callbacks), checkpointer


def compile_functions(trainer):
    """Compile ``trainer``'s step and validation function.

    Returns ``(step, train_names, valid_function, valid_names)``, the names
    being those the metrics are reported under.
    """
    o = trainer.options
    extra = OrderedDict(list(trainer.metrics.items()) + list(trainer.monitors.items()))
    a = trainer.assembly
    weighted = o.accumulate > 1 or (
        trainer.communicator is not None and trainer.communicator.size > 1
    )
    weight = trainer.batch_weight
    if weight is None:
        weight = trainer.inputs[0].shape[0]
    step = CompiledStep(
        a,
        trainer.inputs,
        extra=OrderedDict(
            zip(extra, a.graph.carry(list(extra.values()), trainer.graph), strict=True)
        ),
        givens=trainer.givens,
        mode=o.mode,
        batch_weight=weight,
        split=o.split_update or weighted,
        monitor_gradients=o.monitor_gradients,
        communicator=trainer.communicator,
        weighted=weighted,
        sync=getattr(trainer, "sync_batchnorm", None),
    )
    train_names = metric_names.reported(step.names, trainer.loss_name)
    valid_function, names = validation_function(
        trainer.graph,
        trainer.loss,
        trainer.spec.regularizers,
        trainer.inputs,
        extra,
        # with ema, validation evaluates the averaged parameters
        givens={**trainer.givens, **(trainer.ema.givens() if trainer.ema is not None else {})},
        mode=o.mode,
        batch_weight=trainer.batch_weight,
    )
    return step, train_names, valid_function, metric_names.reported(names, trainer.loss_name)
