r"""The training loop: batches in, updates applied, metrics out.

:class:`Trainer` compiles one training function and one validation function
from an :func:`~trainkit.assembly.assemble`-d graph and drives them:

- ``itertrain(train, valid)`` yields ``(train_metrics, valid_metrics)`` after
  every validation; ``train(...)`` runs it to the end and returns the last
  pair.
- Validation runs the *clean* graph (no noise, no dropout); its ``loss`` is
  the base loss plus the weighted penalties, and early stopping watches it.
  Validation metrics are means over the validation examples: each batch's
  means weighted by its ``batch_weight`` (its number of examples, or the sum
  of its sample weights), so weighted means do not depend on the batch size.
  Order statistics (``min``, ``max``) and ``std`` monitors are averaged over
  batches, an approximation for more than one batch.
- ``train_metrics`` holds ``step`` (updates so far), ``epoch`` (passes over
  the training data *completed* so far: 0 until the first epoch ends),
  ``lr`` (the learning rate of the last update), ``seconds``, ``skipped``
  (updates skipped as non-finite so far), then the training loss, the
  weighted penalties and the extra metrics, each the mean over the updates
  since the previous validation (skipped updates left out).
- Validation happens every ``validate_every`` updates, or at the end of each
  epoch when it is None, and always on the final state: when training ends
  on a limit, the last state is validated if it was not, so ``restore_best``
  never compares against an unvalidated state.
- Early stopping: a validation *improves* when its loss is below the last
  improving one by more than ``min_improvement`` (relative); training stops
  when more than ``patience`` validations in a row do not improve (PyTorch's
  ``ReduceLROnPlateau`` counting, so ``patience=0`` stops at the first one).
  With ``restore_best``, the parameters of the lowest validation loss are
  restored at the end when they are not the current ones; the optimizer
  state is left as it is.
- The learning rate lives in a shared variable that a schedule rewrites
  between updates, so nothing recompiles.
- Updates are guarded: when the loss or a gradient is not finite, no
  parameter or optimizer state changes (random generators still advance), and
  ``nan_policy`` decides whether to raise, skip (counting skips) or stop. A
  skipped update still counts as a step: ``step``, ``max_updates``,
  ``validate_every``, ``save_every`` and the learning-rate schedule count the
  batches drawn, applied or skipped (as PyTorch's schedulers keep stepping
  when a ``GradScaler`` skips an update), while the optimizer's own counters
  (``adam/t``) count applied updates only.
- Checkpoints hold parameters, optimizer state, random generators, the
  schedule, the step counters, the data position, the early-stopping state
  and the metric window, always at a point training continues from (after
  an update and its validation, never after the extra validation at the end),
  so ``resume=`` continues to bitwise-identical parameters.
- Ctrl-C or SIGTERM while the loop runs ends training cleanly after the
  current update, with a final checkpoint when ``save_progress`` is set (a
  second Ctrl-C raises ``KeyboardInterrupt`` at once). The handlers are
  installed only while the loop runs, not while the caller holds a yielded
  pair. When the caller stops iterating (``break``, ``close()``), training
  ends as it would on a limit, minus the final validation. When an exception
  ends training (``nan_policy='raise'``, a callback error), nothing is saved
  or restored: parameters stay as the exception left them.
- Progress bars, log lines, metrics files and checkpoints are callbacks
  (:mod:`trainkit.callbacks`) that hook in from outside the loop.
"""

import math
import signal
import sys
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.tensor.random.type import RandomGeneratorType

import regularizers
from regularizers.base import as_scalar
from regularizers.stochastic import _Stochastic

from .. import archive, optimizers
from ..data.arrays import Dataset
from . import callbacks as cb
from . import monitors, options, schedules
from .assembly import DEFAULT_ALGO, assemble, floatx_of, split_kwargs

__all__ = ["Trainer"]

CHECKPOINT_FORMAT = "trainkit.checkpoint"
CHECKPOINT_VERSION = 1
#: keys of ``train_metrics`` that the loop itself sets
RESERVED_METRICS = ("step", "epoch", "lr", "seconds", "skipped")


def _is_rng(var):
    return isinstance(var.type, RandomGeneratorType)


class _SignalGuard:
    """Ctrl-C and SIGTERM handlers that ask the trainer to stop, installed on demand."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer):
        self.trainer = trainer
        self.previous = None

    def install(self):
        if self.previous is not None or threading.current_thread() is not threading.main_thread():
            return
        self.previous = {sig: signal.signal(sig, self.handle) for sig in self.SIGNALS}

    def uninstall(self):
        if self.previous is None:
            return
        for sig, old in self.previous.items():
            # None: a handler not installed from Python, which cannot be put back
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        self.previous = None

    def handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.trainer.interrupted == name and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.trainer.interrupted = name


class Trainer:
    """Train a graph on data, theanets/downhill-style.

    Parameters
    ----------
    graph : regularizers.Graph
        The model's clean graph.
    loss : scalar Variable
        The base loss on ``graph``.
    inputs : list of Variable
        The symbolic variables each batch feeds, in order (e.g. ``[x, y]``).
    algo : str
        Optimizer name.
    metrics : mapping of str -> scalar Variable, optional
        Extra metrics on ``graph`` (reported for training and validation).
    specs : list of ArraySpec, optional
        Checks for the data arrays, applied before compiling.
    loss_name : str
        Name of the base loss in the metrics.
    givens : mapping of Variable -> Variable, optional
        Substitutions made when compiling, after noise and dropout were put
        in: an autoencoder's loss uses a ``target`` variable given as the
        clean input ``x``, so ``input_noise`` corrupts what the network sees
        but not what it must reconstruct.
    batch_weight : scalar Variable, optional
        How much a validation batch counts when its metrics are averaged
        (e.g. the sum of its sample weights, which makes weighted means
        exact whatever the batch size); default its number of examples.
    **kwargs
        Optimizer hyperparameters, regularizers and trainer options
        (:data:`trainkit.options.OPTIONS`). All are checked here, before any
        data is read or anything compiled.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt, regularizers
    >>> x, y = pt.matrix("x"), pt.vector("y")
    >>> w = pytensor.shared(np.zeros(2, "float32"), name="out.w")
    >>> g = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    >>> t = Trainer(g, pt.mean((x @ w - y) ** 2), [x, y], algo="sgd", learning_rate=0.1,
    ...             max_updates=200, progress=False, log=False)
    >>> X = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    >>> tm, vm = t.train([X, X @ np.array([1.0, -2.0], "float32")])
    >>> np.round(w.get_value(), 2)
    array([ 1., -2.], dtype=float32)
    >>> list(vm), t.stop_reason
    (['loss', 'base'], 'no improvement in 6 validations (patience=5)')
    """

    def __init__(
        self,
        graph,
        loss,
        inputs,
        algo=DEFAULT_ALGO,
        *,
        metrics=None,
        specs=None,
        loss_name="base",
        givens=None,
        batch_weight=None,
        **kwargs,
    ):
        if not isinstance(graph, regularizers.Graph):
            raise TypeError(f"Trainer: graph must be a regularizers.Graph, got {graph!r}")
        if not isinstance(inputs, (list, tuple)) or not all(
            isinstance(v, Variable) for v in inputs
        ):
            raise TypeError(f"Trainer: inputs must be a list of symbolic variables, got {inputs!r}")
        hyper, _, trainer_kwargs = split_kwargs(algo, **kwargs)
        self.options = options.parse(trainer_kwargs)
        self.graph, self.inputs, self.specs = graph, list(inputs), specs
        self._clean_loss = loss
        self.givens = dict(givens or {})
        self.batch_weight = batch_weight
        self.loss_name = loss_name
        self.algo = algo

        # the learning rate is a shared variable so schedules never recompile
        dtype = next(iter(graph.params.values())).dtype if graph.params else pytensor.config.floatX
        self.base_lr = None
        self.lr = None
        if "learning_rate" in hyper:
            given = hyper["learning_rate"]
            if isinstance(given, SharedVariable):
                self.lr = given
                self.base_lr = float(given.get_value())
            elif isinstance(given, Variable):
                raise TypeError("learning_rate: give a number or a shared variable")
            else:
                self.base_lr = float(given)
                self.lr = pytensor.shared(
                    np.asarray(given, dtype=dtype), name="trainer/learning_rate"
                )
            kwargs["learning_rate"] = self.lr
        self.schedule = None
        scheduled = self.options.lr_schedule is not None or self.options.lr_warmup
        what = "lr_schedule" if self.options.lr_schedule is not None else "lr_warmup"
        if self.lr is None and scheduled:
            raise TypeError(f"{what}: {algo} has no learning_rate to schedule")
        if self.lr is not None and scheduled and not optimizers.schedulable(algo):
            raise TypeError(
                f"{what}: {algo} reads learning_rate once, as its initial step size, and then "
                f"adapts its own steps; a schedule would have no effect"
            )
        if isinstance(self.options.lr_schedule, schedules.Schedule):
            given = self.options.lr_schedule
            if self.options.lr_warmup:
                raise TypeError(
                    f"lr_warmup: give the warmup to the Schedule object itself (it has "
                    f"warmup={given.warmup})"
                )
            if "learning_rate" in kwargs and given.learning_rate != self.base_lr:
                raise TypeError(
                    f"learning_rate: {self.base_lr!r} disagrees with the Schedule object's "
                    f"learning_rate={given.learning_rate!r}; give it once"
                )
        if self.lr is not None:
            # checked now with a placeholder length; built for the run in itertrain
            self.schedule = self._schedule_for(batches_per_epoch=10**6)

        self.assembly = assemble(graph, loss, algo, **kwargs)
        self.metrics = OrderedDict(metrics or {})
        self.monitors = monitors.build(self.options.monitors, graph)
        self._check_metric_names()
        self._seed_generators()
        self._train_fn = self._valid_fn = None
        self.checkpointer = None
        self.reset()

    def _check_metric_names(self):
        names = ["loss", self.loss_name, *self.assembly.penalties, *self.metrics, *self.monitors]
        if self.options.monitor_gradients:
            names.append("grad_norm")
        seen = set(RESERVED_METRICS)
        for name in names:
            if name in seen:
                raise ValueError(
                    f"metrics: two metrics would be named {name!r} (reserved: "
                    f"{', '.join(RESERVED_METRICS)}, loss, the loss name {self.loss_name!r}, "
                    f"penalties, metrics and monitors must all differ)"
                )
            seen.add(name)

    # -- state -------------------------------------------------------------------

    def reset(self):
        """Forget progress: counters, early-stopping state, metric window (itertrain rebuilds
        the schedule)."""
        self._lr_set = None
        self.step = 0
        self.skipped = 0
        self.best_loss = math.inf
        self.best_step = None
        self.best_params = None
        self.restored_step = None
        self.reference_loss = math.inf
        self.bad_validations = 0
        self.improved = False
        self.validated_at = None
        self.last_loss = math.nan
        self.last_valid = None
        self.stop_reason = None
        self.elapsed = 0.0
        self.dataset = None
        self._window = None
        self._window_count = 0
        #: the signal that interrupted training ('SIGINT', 'SIGTERM'), or None
        self.interrupted = None
        self._final_saved = False

    def _schedule_for(self, batches_per_epoch):
        """The learning-rate schedule for a run whose epochs have this many batches.

        Schedules that need the run's length (``cosine``) get ``max_updates``,
        or ``max_epochs`` times the batches per epoch.
        """
        o = self.options
        total = o.max_updates
        if total is None and o.max_epochs is not None and batches_per_epoch:
            total = o.max_epochs * batches_per_epoch
        schedule = schedules.build(
            o.lr_schedule, self.base_lr, warmup=o.lr_warmup, total_steps=total
        )
        if schedule is o.lr_schedule:  # a Schedule object given by the user: start it afresh
            if not hasattr(self, "_schedule_start"):
                self._schedule_start = schedule.state()
            schedule.set_state(self._schedule_start)
        return schedule

    def _seed_generators(self):
        """Seed every random generator from ``seed`` (and the generator's name).

        Noise and dropout regularizers given a ``seed`` of their own keep it;
        the rest (other regularizers', the optimizer's, like ``esgd/rng``)
        follow the trainer's ``seed``, so one number reproduces a run.
        """
        own = {
            r.rng_name
            for r in self.assembly.regularizers
            if isinstance(r, _Stochastic) and r.seed is not None
        }
        for var in self.assembly.updates:
            if _is_rng(var) and var.name not in own:
                key = zlib.crc32(var.name.encode())
                var.set_value(np.random.default_rng([self.options.seed, key]), borrow=True)

    @property
    def state_variables(self):
        """Every shared variable training changes, by name (params, optimizer, rngs, lr)."""
        variables = OrderedDict()
        for var in self.assembly.updates:
            if not var.name:
                raise ValueError(f"Trainer: an updated shared variable has no name: {var}")
            if var.name in variables:
                raise ValueError(f"Trainer: two updated shared variables are named {var.name!r}")
            variables[var.name] = var
        if self.lr is not None and self.lr.name not in variables:
            variables[self.lr.name or "trainer/learning_rate"] = self.lr
        return variables

    @property
    def planned_updates(self):
        """Total updates the run is set up for, if known (for progress bars)."""
        candidates = []
        if self.options.max_updates:
            candidates.append(self.options.max_updates)
        if self.options.max_epochs and self.dataset is not None and self.dataset.batches_per_epoch:
            candidates.append(self.options.max_epochs * self.dataset.batches_per_epoch)
        return min(candidates) if candidates else None

    # -- compiling ---------------------------------------------------------------

    def _compile(self):
        a = self.assembly
        mode = self.options.mode
        names = ["loss", self.loss_name, *a.penalties]
        outputs = [a.loss, a.base_loss, *a.penalties.values()]
        extra = OrderedDict(list(self.metrics.items()) + list(self.monitors.items()))
        names += list(extra)
        outputs += a.graph.carry(list(extra.values()), self.graph)
        if self.options.monitor_gradients:
            grad_sq = None
            for g in a.gradients.values():
                term = pt.cast(pt.sum(pt.sqr(g)), a.loss.dtype)
                grad_sq = term if grad_sq is None else grad_sq + term
            names.append("grad_norm")
            outputs.append(pt.sqrt(grad_sq))
        # every gradient element finite (a sum of squares could overflow on finite values)
        finite = pt.isfinite(a.loss)
        for g in a.gradients.values():
            finite = pt.and_(finite, pt.all(pt.isfinite(g)))
        updates = OrderedDict()
        for var, new in a.updates.items():
            updates[var] = new if _is_rng(var) else pt.switch(finite, new, var)
        self.train_names = names
        self._train_fn = pytensor.function(
            self.inputs,
            [pt.cast(finite, "int8"), *outputs],
            updates=updates,
            givens=self.givens,
            mode=mode,
        )

        clean = OrderedDict(loss=None)
        clean[self.loss_name] = self._clean_loss
        total = self._clean_loss
        for reg in a.regularizers:
            penalty = reg.loss(self.graph)
            if penalty is not None:
                term = as_scalar(reg.weight, penalty.dtype) * penalty
                total = total + pt.cast(term, total.dtype)
        clean["loss"] = total
        clean.update(extra)
        self.valid_names = list(clean)
        weight = self.batch_weight
        if weight is None:
            weight = pt.cast(self.inputs[0].shape[0], total.dtype)
        self._valid_fn = pytensor.function(
            self.inputs,
            [pt.cast(weight, total.dtype), *clean.values()],
            givens=self.givens,
            mode=mode,
        )

    # -- the loop ----------------------------------------------------------------

    def _datasets(self, train, valid):
        o = self.options
        train_ds = Dataset(
            train,
            self.specs,
            batch_size=o.batch_size,
            shuffle=o.shuffle,
            seed=o.seed,
            epoch_size=o.epoch_size,
            name="train",
        )
        if valid is None:
            if train_ds.kind != "arrays":
                raise ValueError(
                    "valid: give validation data when training data is a callable or an iterable"
                )
            valid_ds = train_ds  # iter_epoch walks it in order, cast, without moving it
        elif callable(valid) or isinstance(valid, Iterator):
            raise ValueError(
                "valid: validation data must be arrays or a list of batches (it is read once "
                f"per validation), got {type(valid).__name__}"
            )
        else:
            valid_ds = Dataset(
                valid, self.specs, batch_size=o.batch_size, shuffle=False, name="valid"
            )
        return train_ds, valid_ds

    def _callbacks(self):
        o = self.options
        hooks = []
        bar = None
        show = o.progress if o.progress != "auto" else sys.stderr.isatty()
        if show:
            bar = cb.ProgressBar()
            hooks.append(bar)
        if o.log:
            hooks.append(cb.LogLines(bar=bar))
        if o.run_dir is not None:
            hooks.append(cb.MetricsFile(o.run_dir, o.metrics_format))
        self.checkpointer = None
        if o.save_progress is not None:
            self.checkpointer = cb.Checkpointer(o.save_progress, o.save_every)
            hooks.append(self.checkpointer)
        return hooks + o.callbacks

    def _call(self, hooks, method, *args):
        for hook in hooks:
            function = getattr(hook, method, None)
            if function is not None:
                function(self, *args)

    def itertrain(self, train, valid=None):
        """Train; yield ``(train_metrics, valid_metrics)`` after each validation.

        Data, options and the ``resume`` checkpoint are checked (shapes,
        dtypes, NaNs, label ranges, model and optimizer) before anything is
        compiled. Training ends when ``max_updates`` or ``max_epochs`` is
        reached, when more than ``patience`` validations pass without
        improvement, when one-shot training data run out, on a non-finite loss
        with ``nan_policy='stop'``, on Ctrl-C / SIGTERM, or when the caller
        stops iterating; then a final checkpoint is saved (``save_progress``),
        the last state is validated if it was not (not after a signal or a
        caller's stop), and with ``restore_best`` the best validated
        parameters are restored when they are not the current ones.
        ``stop_reason`` says why training ended.
        """
        o = self.options
        self.reset()
        self.dataset, valid_ds = self._datasets(train, valid)
        if self.schedule is not None:
            self.schedule = self._schedule_for(self.dataset.batches_per_epoch)
        if (
            o.max_updates is None
            and o.max_epochs is None
            and o.patience is None
            and not self.dataset.one_shot
        ):
            raise ValueError(
                "max_updates, max_epochs, patience: all are None, so training would never end; "
                "set at least one"
            )
        if o.resume is not None:
            self._apply_checkpoint(*self._read_checkpoint(o.resume), o.resume)
        hooks = self._callbacks()
        if self._train_fn is None:
            with floatx_of(self.graph.params.values()):
                self._compile()
        started = time.monotonic() - self.elapsed
        guard = _SignalGuard(self)
        guard.install()
        try:
            self._call(hooks, "on_start")
            while self.stop_reason is None:
                reason = self._limit_reached()
                if reason:
                    self.stop_reason = reason
                    break
                epoch, index = self.dataset.epoch, self.dataset.batch_index
                batch = self.dataset.next_batch()
                self._update(batch, epoch, index)
                self.elapsed = time.monotonic() - started
                self._call(hooks, "on_update")
                due = (
                    self.step % o.validate_every == 0
                    if o.validate_every
                    else self.dataset.epoch > epoch
                )
                pair = None
                if due or self.stop_reason:
                    pair = self._validate(valid_ds)
                    self._call(hooks, "on_validation", *pair)
                self._call(hooks, "on_step_end")
                if pair is not None:
                    guard.uninstall()
                    yield pair
                    guard.install()
                if self.interrupted and self.stop_reason is None:
                    self.stop_reason = f"interrupted by {self.interrupted}"
            self._save_final()
            if self.validated_at != self.step and self.step > 0 and not self.interrupted:
                self.elapsed = time.monotonic() - started
                pair = self._validate(valid_ds)
                self._call(hooks, "on_validation", *pair)
                guard.uninstall()
                yield pair
        except GeneratorExit:
            guard.uninstall()
            if self.stop_reason is None:
                self.stop_reason = "stopped by the caller"
            self.elapsed = time.monotonic() - started
            self._save_final()
            self._finish(hooks)
            raise
        except BaseException as error:
            guard.uninstall()
            self.elapsed = time.monotonic() - started
            self.stop_reason = f"{type(error).__name__}: {error}"
            self._call(hooks, "on_end")
            raise
        else:
            self._finish(hooks)
        finally:
            guard.uninstall()

    def _save_final(self):
        """Save the state training ends with, unless the last checkpoint already holds it."""
        if self.checkpointer is not None and not self._final_saved:
            if self.checkpointer.saved_step != self.step:
                self.checkpointer.save(self)
            self._final_saved = True

    def _finish(self, hooks):
        self._restore_best()
        self._call(hooks, "on_end")

    def train(self, train, valid=None):
        """Run :meth:`itertrain` to the end; return the last metrics pair.

        ``(None, None)`` when nothing was validated (e.g. a run interrupted
        before its first validation).
        """
        last = (None, None)
        for pair in self.itertrain(train, valid):
            last = pair
        return last

    def _limit_reached(self):
        o = self.options
        if o.max_updates is not None and self.step >= o.max_updates:
            return f"max_updates={o.max_updates} reached"
        if o.max_epochs is not None and self.dataset.epoch >= o.max_epochs:
            return f"max_epochs={o.max_epochs} reached"
        if self.dataset.exhausted:
            return "training data exhausted"
        return None

    def _update(self, batch, epoch, index):
        """Apply one update; ``epoch``, ``index``: the batch's 0-based position."""
        if self.lr is not None:
            rate = self.schedule.value(self.step)
            if rate != self._lr_set:  # set_value costs more than the comparison
                self.lr.set_value(np.asarray(rate, dtype=self.lr.dtype))
                self._lr_set = rate
        with np.errstate(all="ignore"):  # non-finite values are nan_policy's business
            finite, *values = self._train_fn(*batch)
        if not finite:
            policy = self.options.nan_policy
            where = f"update {self.step + 1} (epoch {epoch + 1}, batch {index + 1})"
            if policy == "raise":
                raise FloatingPointError(
                    f"non-finite loss or gradient at {where}; parameters were left as they were "
                    f"before it (nan_policy='raise'; 'skip' or 'stop' to continue or end)"
                )
            self.skipped += 1
            if policy == "stop":
                self.stop_reason = f"non-finite loss or gradient at {where} (nan_policy='stop')"
            self.step += 1
            return
        values = np.asarray(values, dtype=np.float64)
        if self._window is None:
            self._window = np.zeros_like(values)
        self._window += values
        self._window_count += 1
        self.last_loss = float(values[0])
        self.step += 1

    def _validate(self, valid_ds):
        sums, total = None, 0.0
        for batch in valid_ds.iter_epoch():
            with np.errstate(all="ignore"):  # a non-finite validation loss is reported as such
                weight, *values = self._valid_fn(*batch)
                weight = float(weight)
                values = np.asarray(values, dtype=np.float64) * weight
            sums = values if sums is None else sums + values
            total += weight
        valid_metrics = OrderedDict(
            (name, float(v))
            for name, v in zip(self.valid_names, sums / (total or math.nan), strict=True)
        )
        if self._window_count:
            means = self._window / self._window_count
            train_values = OrderedDict(zip(self.train_names, map(float, means), strict=True))
        else:
            train_values = OrderedDict((name, math.nan) for name in self.train_names)
        train_metrics = OrderedDict(
            step=self.step,
            epoch=self.dataset.epoch,
            lr=float(self.lr.get_value()) if self.lr is not None else math.nan,
            seconds=round(self.elapsed, 3),
            skipped=self.skipped,
        )
        train_metrics.update(train_values)
        self._window = None
        self._window_count = 0
        self.validated_at = self.step

        # the best parameters by validation loss, for restoring at the end
        loss = valid_metrics["loss"]
        self.improved = bool(np.isfinite(loss) and loss < self.best_loss)
        if self.improved:
            self.best_loss = loss
            self.best_step = self.step
            self.best_params = OrderedDict(
                (name, p.get_value()) for name, p in self.graph.params.items()
            )
        # patience counts validations that miss the last counted improvement by
        # min_improvement (relative), as downhill did
        reference = self.reference_loss
        if np.isfinite(loss) and (
            not np.isfinite(reference)
            or loss < reference - self.options.min_improvement * abs(reference)
        ):
            self.reference_loss = loss
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            patience = self.options.patience
            if patience is not None and self.bad_validations > patience:
                self.stop_reason = (
                    f"no improvement in {self.bad_validations} validations (patience={patience})"
                )
        if self.schedule is not None:
            self.schedule.observe(loss)
        self.last_valid = valid_metrics
        return train_metrics, valid_metrics

    def _restore_best(self):
        """Restore the best validated parameters unless they are the current ones.

        The best validation loss is never above the last one, so the result is
        never worse than the last validated state.
        """
        if not self.options.restore_best or self.best_params is None:
            return
        if self.best_step == self.step:
            return
        for name, p in self.graph.params.items():
            p.set_value(np.array(self.best_params[name], copy=True))
        self.restored_step = self.best_step

    # -- checkpoints -------------------------------------------------------------

    def _signature(self):
        variables = self.state_variables
        return {
            "algo": self.algo,
            "variables": {
                name: [
                    str(np.asarray(var.get_value(borrow=True)).dtype),
                    list(np.shape(var.get_value(borrow=True))),
                ]
                for name, var in variables.items()
                if not _is_rng(var)
            },
            "generators": sorted(name for name, var in variables.items() if _is_rng(var)),
            "schedule": None if self.schedule is None else self.schedule.name,
        }

    def save_checkpoint(self, path):
        """Write everything needed to continue training to ``path`` (atomically)."""
        arrays = OrderedDict()
        generators = {}
        for name, var in self.state_variables.items():
            value = var.get_value(borrow=True)
            if _is_rng(var):
                generators[name] = value.bit_generator.state
            else:
                arrays[f"state/{name}"] = np.asarray(value)
        if self.best_params is not None:
            for name, value in self.best_params.items():
                arrays[f"best/{name}"] = value
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "signature": self._signature(),
            "step": self.step,
            "skipped": self.skipped,
            "elapsed": self.elapsed,
            "dataset": self.dataset.state(),
            "schedule": None if self.schedule is None else self.schedule.state(),
            "generators": generators,
            "early_stopping": {
                "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
                "reference_loss": (
                    self.reference_loss if math.isfinite(self.reference_loss) else None
                ),
                "best_step": self.best_step,
                "bad_validations": self.bad_validations,
                "validated_at": self.validated_at,
            },
            "window": None if self._window is None else [float(v) for v in self._window],
            "window_count": self._window_count,
        }
        archive.save(path, arrays, meta)

    def _read_checkpoint(self, path):
        """Read and check a checkpoint against this trainer, before compiling."""
        try:
            arrays, meta = archive.load(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"resume: no checkpoint at {path}") from None
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"resume: {path} is not a trainkit checkpoint")
        ours = self._signature()
        theirs = meta.get("signature", {})
        if theirs != ours:
            if theirs.get("algo") != ours["algo"]:
                why = (
                    f"it was made with algo={theirs.get('algo')!r}, this run uses {ours['algo']!r}"
                )
            elif theirs.get("schedule") != ours["schedule"]:
                why = (
                    f"it was made with lr_schedule {theirs.get('schedule')!r}, this run uses "
                    f"{ours['schedule']!r}"
                )
            else:
                diff = []
                for key in ("variables", "generators"):
                    a, b = theirs.get(key, {}), ours[key]
                    diff += sorted(set(a) ^ set(b))
                    if key == "variables":
                        diff += sorted(k for k in set(a) & set(b) if a[k] != b[k])
                shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
                why = f"its state differs in {shown}"
            raise ValueError(f"resume: {path} does not match this model and optimizer; {why}")
        return arrays, meta

    def _apply_checkpoint(self, arrays, meta, path):
        """Set every piece of training state from a checkpoint (before compiling)."""
        try:
            self.dataset.set_state(meta["dataset"])
        except ValueError as error:
            raise ValueError(
                f"resume: {path} was saved training on other data or with other batching: {error}"
            ) from None
        for name, var in self.state_variables.items():
            if _is_rng(var):
                rng = np.random.default_rng()
                rng.bit_generator.state = meta["generators"][name]
                var.set_value(rng, borrow=True)
            else:
                var.set_value(np.array(arrays[f"state/{name}"], copy=True))
        best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}
        self.best_params = OrderedDict((n, best[n]) for n in self.graph.params) if best else None
        es = meta["early_stopping"]
        self.best_loss = math.inf if es["best_loss"] is None else es["best_loss"]
        self.reference_loss = math.inf if es["reference_loss"] is None else es["reference_loss"]
        self.best_step = es["best_step"]
        self.bad_validations = es["bad_validations"]
        self.validated_at = es["validated_at"]
        self.step = meta["step"]
        self.skipped = meta["skipped"]
        self.elapsed = meta["elapsed"]
        if self.schedule is not None and meta["schedule"] is not None:
            self.schedule.set_state(meta["schedule"])
        self._window = None if meta["window"] is None else np.asarray(meta["window"], np.float64)
        self._window_count = meta["window_count"]
