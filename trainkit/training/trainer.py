r"""The training loop: batches in, updates applied, metrics out.

:class:`Trainer` compiles one training function and one validation function
from an :func:`~trainkit.training.assembly.assemble`-d graph and drives them:

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
- Early stopping (:mod:`~trainkit.training.early_stopping`): a validation
  *improves* when its loss is below the last improving one by more than
  ``min_improvement`` (relative); training stops when ``patience``
  validations in a row do not improve (Keras' counting). With
  ``restore_best``, the parameters of the lowest validation loss are restored
  at the end when they are not the current ones, and the metrics returned
  and yielded last are those of the restored parameters; the optimizer
  state is left as it is.
- The learning rate lives in a shared variable that a schedule rewrites
  between updates, so nothing recompiles.
- The step (:mod:`~trainkit.training.step`) is one compiled function, or
  with ``accumulate=N`` (or ``split_update=True``) two: the gradients of N
  batches are accumulated, then one update applied. ``step`` counts
  updates, not batches.
- Updates are guarded: when the loss or a gradient is not finite, no
  parameter or optimizer state changes (random generators still advance), and
  ``nan_policy`` decides whether to raise, skip (counting skips) or stop. A
  skipped update still counts as a step: ``step``, ``max_updates``,
  ``validate_every``, ``save_every`` and the learning-rate schedule count the
  updates made or skipped (as PyTorch's schedulers keep stepping when a
  ``GradScaler`` skips an update), while the optimizer's own counters
  (``adam/t``) count applied updates only. A run that skipped more than half
  of its updates, or stopped on a non-finite value, has ``diverged`` set and
  says so in ``stop_reason``.
- Checkpoints hold parameters, optimizer state, random generators, the
  schedule, the step counters, the data position, the early-stopping state
  and the metric window, always at a point training continues from (after
  an update and its validation, never after the extra validation at the end),
  so ``resume=`` continues to bitwise-identical parameters.
- ``trainer.stop(reason)`` (from a callback, or a signal handler installed
  with :func:`trainkit.training.signals.stop_on_signals`) ends training after
  the current update, with a final checkpoint when ``save_progress`` is set.
  When the caller stops iterating (``break``, ``close()``), training ends as
  it would on a limit, minus the final validation. When an exception ends
  training (``nan_policy='raise'``, a callback error), nothing is saved or
  restored: parameters stay as the exception left them.
- Parameters are numpy arrays after training, whatever the backend.
- Data parallel (``data_parallel='mpi'``, or a ``communicator`` of more
  than one process; see :mod:`trainkit.distributed.training` and
  ``docs/distributed.md``): every process runs this loop on the same data,
  computes gradients on its shard of each global batch, and applies the
  same all-reduced update; every decision (non-finite, stop requests, early
  stopping, schedules, checkpoints) is taken on reduced values, so the
  replicas stay bitwise identical. Only rank 0 shows progress, logs and
  writes files.
- Progress bars, log lines, metrics files and checkpoints are callbacks
  (:mod:`trainkit.training.callbacks`) that hook in from outside the loop.
"""

import logging
import math
import time
import zlib
from collections import OrderedDict

import numpy as np
import pytensor
from pytensor.graph.basic import Variable
from pytensor.tensor.random.type import RandomGeneratorType

import regularizers

from .. import distributed
from ..data.split import training_datasets
from ..distributed import training as distributed_training
from . import checkpoints, monitors, updates
from .assembly import assemble, floatx_of
from .callbacks import default_callbacks
from .early_stopping import EarlyStopping
from .rates import LearningRate
from .spec import parse
from .step import Step, validation_function
from .threads import limit_threads
from .updates import MetricWindow

__all__ = ["Trainer"]

#: keys of ``train_metrics`` that the loop itself sets
RESERVED_METRICS = ("step", "epoch", "lr", "seconds", "skipped")
#: a run that skipped more than this share of its batches as non-finite diverged
DIVERGED_SHARE = 0.5

logger = logging.getLogger("trainkit")


def _is_rng(var):
    return isinstance(var.type, RandomGeneratorType)


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
    algo : str, optional
        Optimizer name (default ``'rmsprop'``).
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
        How much a batch counts when validation metrics are averaged and
        gradients accumulated (e.g. the sum of its sample weights); default
        its number of examples.
    spec : TrainingSpec, optional
        Keywords already parsed by :func:`trainkit.training.spec.parse`
        (then give no ``algo`` or keywords).
    communicator : Communicator, optional
        Sums gradients over processes between the two halves of the step
        (data-parallel training); the ``data_parallel`` option names one
        instead (``'mpi'``).
    **kwargs
        Optimizer hyperparameters, regularizers and trainer options
        (:data:`trainkit.training.options.OPTIONS`), parsed once, here,
        before any data is read or anything compiled.

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
    (['loss', 'base'], 'no improvement in 5 validations (patience=5)')
    """

    def __init__(
        self,
        graph,
        loss,
        inputs,
        algo=None,
        *,
        metrics=None,
        specs=None,
        loss_name="base",
        givens=None,
        batch_weight=None,
        spec=None,
        communicator=None,
        **kwargs,
    ):
        if not isinstance(graph, regularizers.Graph):
            raise TypeError(f"Trainer: graph must be a regularizers.Graph, got {graph!r}")
        if not isinstance(inputs, (list, tuple)) or not all(
            isinstance(v, Variable) for v in inputs
        ):
            raise TypeError(f"Trainer: inputs must be a list of symbolic variables, got {inputs!r}")
        if spec is None:
            spec = parse(algo, **kwargs)
        elif algo is not None or kwargs:
            raise TypeError("Trainer: give keywords or a parsed spec, not both")
        self.spec = spec
        self.options = spec.options
        self.algo = spec.algo
        self.graph, self.inputs, self.specs = graph, list(inputs), specs
        self._clean_loss = loss
        self.givens = dict(givens or {})
        self.batch_weight = batch_weight
        self.loss_name = loss_name
        if communicator is not None and self.options.data_parallel is not None:
            raise TypeError(
                "Trainer: give communicator= or the data_parallel option, not both; got "
                f"communicator={communicator!r} and data_parallel={self.options.data_parallel!r}"
            )
        self.communicator = communicator or distributed.from_name(self.options.data_parallel)
        #: whether more than one process trains (data parallel)
        self.parallel = self.communicator is not None and self.communicator.size > 1
        #: the process that shows progress and writes files (rank 0)
        self.is_writer = self.communicator is None or self.communicator.is_root

        # the learning rate is a shared variable, so schedules never recompile
        dtype = next(iter(graph.params.values())).dtype if graph.params else pytensor.config.floatX
        self.rate = LearningRate(spec, dtype)
        hyper = dict(spec.hyperparameters)
        if self.lr is not None:
            hyper["learning_rate"] = self.lr

        self.hyperparameters = hyper
        self.assembly = assemble(graph, loss, spec=spec, hyperparameters=hyper)
        self.metrics = OrderedDict(metrics or {})
        self.monitors = monitors.build(self.options.monitors, graph)
        self._check_metric_names()
        self._seed_generators()
        self._step = self._valid_fn = None
        self.checkpointer = None
        self.early_stopping = EarlyStopping(self.options.patience, self.options.min_improvement)
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
        """Forget progress: counters, early stopping, metric window."""
        self.step = 0
        self.skipped = 0
        self.early_stopping.reset()
        self.restored_step = None
        self.best_metrics = None
        self.validated_at = None
        self.last_loss = math.nan
        self.last_valid = None
        self.stop_reason = None
        self.diverged = False
        self.elapsed = 0.0
        self.dataset = None
        self.window = MetricWindow()
        #: the signal that interrupted training ('SIGINT', 'SIGTERM'), or None
        self.interrupted = None
        # data parallel: a stop asked for on this process, until all agree on it
        self._stop_request = None
        self._interrupted_agreed = None
        self._final_saved = False

    # early-stopping state, by the names callbacks and the command line read
    improved = property(lambda self: self.early_stopping.improved)
    best_loss = property(lambda self: self.early_stopping.best_loss)
    best_step = property(lambda self: self.early_stopping.best_step)
    best_params = property(lambda self: self.early_stopping.best_params)

    def stop(self, reason):
        """End training after the current update (callbacks, signal handlers).

        In data-parallel training the request waits for the next update,
        whose all-reduce tells every process, so all stop after the same one.
        """
        if self.parallel:
            if self._stop_request is None:
                self._stop_request = str(reason)
            return
        self._end(reason)

    def _end(self, reason):
        """Stop after this update: a decision every process has taken alike."""
        if self.stop_reason is None:
            self.stop_reason = str(reason)

    @property
    def _was_interrupted(self):
        """The interruption every process agrees on (this one's when alone)."""
        return self._interrupted_agreed if self.parallel else self.interrupted

    def window_state(self):
        """The training metrics summed since the last validation, and their count."""
        return self.window.state()

    def set_window_state(self, window, count):
        self.window.set_state(window, count)

    # the learning rate: its variable, the rate given, the run's schedule
    lr = property(lambda self: self.rate.variable)
    base_lr = property(lambda self: self.rate.base)
    schedule = property(lambda self: self.rate.schedule)

    def _seed_generators(self):
        """Seed every random generator from ``seed`` (and the generator's name).

        Noise and dropout regularizers given a ``seed`` of their own keep it;
        the rest (other regularizers', the optimizer's, like ``esgd/rng``)
        follow the trainer's ``seed``, so one number reproduces a run.
        """
        own = {r.rng_name for r in self.spec.regularizers if getattr(r, "seed", None) is not None}
        for var in self.assembly.updates:
            if _is_rng(var) and var.name not in own:
                key = zlib.crc32(var.name.encode())
                var.set_value(np.random.default_rng([self.options.seed, key]), borrow=True)
        if self.parallel:  # every process draws its own noise and dropout masks
            for var in self.assembly.updates:
                if _is_rng(var):
                    var.set_value(distributed_training.rank_generator(self, var), borrow=True)

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
    def updates_per_epoch(self):
        """Updates per epoch, if known (an epoch's batches, ``accumulate`` at a time)."""
        batches = self.dataset.batches_per_epoch if self.dataset is not None else None
        return None if not batches else -(-batches // self.options.accumulate)

    @property
    def planned_updates(self):
        """Total updates the run is set up for, if known (for progress bars)."""
        candidates = []
        if self.options.max_updates:
            candidates.append(self.options.max_updates)
        if self.options.max_epochs and self.updates_per_epoch:
            candidates.append(self.options.max_epochs * self.updates_per_epoch)
        return min(candidates) if candidates else None

    def save_checkpoint(self, path):
        """Write everything needed to continue training to ``path`` (atomically)."""
        self._as_numpy()
        checkpoints.save(self, path)

    # -- compiling ---------------------------------------------------------------

    def _compile(self):
        o = self.options
        extra = OrderedDict(list(self.metrics.items()) + list(self.monitors.items()))
        a = self.assembly
        weighted = o.accumulate > 1 or (
            self.communicator is not None and self.communicator.size > 1
        )
        weight = self.batch_weight
        if weight is None:
            weight = self.inputs[0].shape[0]
        self._step = Step(
            a,
            self.inputs,
            extra=OrderedDict(
                zip(extra, a.graph.carry(list(extra.values()), self.graph), strict=True)
            ),
            givens=self.givens,
            mode=o.mode,
            batch_weight=weight,
            split=o.split_update or weighted,
            monitor_gradients=o.monitor_gradients,
            communicator=self.communicator,
            weighted=weighted,
        )
        self.train_names = [self.loss_name if n == "base" else n for n in self._step.names]
        self._valid_fn, names = validation_function(
            self.graph,
            self._clean_loss,
            self.spec.regularizers,
            self.inputs,
            extra,
            givens=self.givens,
            mode=o.mode,
            batch_weight=self.batch_weight,
        )
        self.valid_names = [self.loss_name if n == "base" else n for n in names]

    # -- the loop ----------------------------------------------------------------

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
        reached, when ``patience`` validations pass without improvement, when
        one-shot training data run out, on a non-finite loss with
        ``nan_policy='stop'``, on :meth:`stop`, or when the caller stops
        iterating; then a final checkpoint is saved (``save_progress``), the
        last state is validated if it was not (not after a signal or a
        caller's stop), and with ``restore_best`` the best validated
        parameters are restored when they are not the current ones.
        ``stop_reason`` says why training ended.
        """
        o = self.options
        self.reset()
        self.dataset, valid_ds = training_datasets(train, valid, self.specs, o)
        self.rate.for_run(self.updates_per_epoch)
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
        if self.parallel:
            distributed_training.broadcast_state(self)
        if o.resume is not None:
            checkpoints.apply(self, *checkpoints.read(self, o.resume), o.resume)
        hooks, self.checkpointer = default_callbacks(
            o if self.is_writer else distributed_training.quiet_options(o)
        )
        with limit_threads(o.threads):
            if self._step is None:
                with floatx_of(self.graph.params.values()):
                    self._compile()
            started = time.monotonic() - self.elapsed
            try:
                self._call(hooks, "on_start")
                while self.stop_reason is None:
                    reason = self._limit_reached()
                    if reason:
                        self.stop_reason = reason
                        break
                    epoch = self.dataset.epoch
                    self._update()
                    self.elapsed = time.monotonic() - started
                    self._call(hooks, "on_update")
                    due = (
                        self.step % o.validate_every == 0
                        if o.validate_every
                        else self.dataset.epoch > epoch
                    )
                    pair = None
                    if due or (self.stop_reason and not self._was_interrupted):
                        pair = self._validate(valid_ds)
                        self._call(hooks, "on_validation", *pair)
                    self._call(hooks, "on_step_end")
                    if pair is not None:
                        yield pair
                self._judge()
                self._save_final()
                if self.validated_at != self.step and self.step > 0 and not self._was_interrupted:
                    self.elapsed = time.monotonic() - started
                    pair = self._validate(valid_ds)
                    self._call(hooks, "on_validation", *pair)
                    yield pair
            except GeneratorExit:
                if self.stop_reason is None:
                    self.stop_reason = "stopped by the caller"
                self.elapsed = time.monotonic() - started
                self._save_final()
                self._finish(hooks)
                raise
            except BaseException as error:
                self.elapsed = time.monotonic() - started
                self.stop_reason = f"{type(error).__name__}: {error}"
                self._call(hooks, "on_end")
                raise
            else:
                self._finish(hooks)
            finally:
                self._as_numpy()

    def _judge(self):
        """Mark a run that stopped on, or mostly skipped, non-finite values as diverged."""
        drawn = max(self.dataset.drawn, 1)
        if self.options.nan_policy == "stop" and self.stop_reason.startswith("non-finite"):
            self.diverged = True
        elif self.skipped > DIVERGED_SHARE * drawn:
            self.diverged = True
            self.stop_reason = (
                f"{self.stop_reason}; diverged: {self.skipped} of {drawn} batches were skipped "
                f"as non-finite (nan_policy='skip')"
            )
        if self.diverged:
            logger.warning("training diverged: %s", self.stop_reason)

    def _as_numpy(self):
        """Leave every state variable holding numpy values: writable arrays (JAX returns
        its own), and the generators where the compiled functions left them."""
        if self._step is not None:
            self._step.sync_generators()
        for var in self.state_variables.values():
            value = var.get_value(borrow=True)
            if not _is_rng(var) and not isinstance(value, np.ndarray):
                var.set_value(np.array(value, copy=True), borrow=True)

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
        """Run :meth:`itertrain` to the end; return the metrics of the parameters kept.

        That is the last ``(train_metrics, valid_metrics)`` pair, or the best
        validation's when ``restore_best`` restored its parameters; ``(None,
        None)`` when nothing was validated (e.g. a run stopped before its
        first validation).
        """
        last = (None, None)
        for pair in self.itertrain(train, valid):
            last = pair
        if self.restored_step is not None and self.best_metrics is not None:
            return self.best_metrics
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

    def _update(self):
        """Make one update: one batch, or ``accumulate`` batches and one update."""
        self.rate.set(self.step)
        if self.parallel:
            distributed_training.update(self)
        else:
            updates.update(self)
        self.step += 1

    def _record(self, values):
        self.window.add(values)
        self.last_loss = float(values[0])

    def _non_finite(self, epoch, index):
        policy = self.options.nan_policy
        where = f"update {self.step + 1} (epoch {epoch + 1}, batch {index + 1})"
        if policy == "raise":
            raise FloatingPointError(
                f"non-finite loss or gradient at {where}; parameters were left as they were "
                f"before it (nan_policy='raise'; 'skip' or 'stop' to continue or end)"
            )
        self.skipped += 1
        if policy == "stop":
            self._end(f"non-finite loss or gradient at {where} (nan_policy='stop')")

    def _validate(self, valid_ds):
        sums, total = None, 0.0
        for batch in valid_ds.iter_epoch():
            if self.parallel:
                batch = distributed.shard_rows(
                    batch, self.communicator.rank, self.communicator.size
                )
                if not len(batch[0]):
                    continue
            with np.errstate(all="ignore"):  # a non-finite validation loss is reported as such
                weight, *values = self._valid_fn(*batch)
                weight = float(weight)
                values = np.asarray(values, dtype=np.float64) * weight
            sums = values if sums is None else sums + values
            total += weight
        if self.parallel:  # one all-reduce of the weighted sums and the total weight
            sums, total = distributed_training.reduce_validation(self, sums, total)
        valid_metrics = OrderedDict(
            (name, float(v))
            for name, v in zip(self.valid_names, sums / (total or math.nan), strict=True)
        )
        train_values = self.window.means(self.train_names)
        train_metrics = OrderedDict(
            step=self.step,
            epoch=self.dataset.epoch,
            lr=self.rate.value(),
            seconds=round(self.elapsed, 3),
            skipped=self.skipped,
        )
        train_metrics.update(train_values)
        self.window.clear()
        self.validated_at = self.step

        loss = valid_metrics["loss"]
        self.early_stopping.observe(
            loss, self.step, lambda: ((n, p.get_value()) for n, p in self.graph.params.items())
        )
        if self.early_stopping.improved:
            self.best_metrics = (train_metrics, valid_metrics)
        if self.early_stopping.reason:
            self._end(self.early_stopping.reason)
        if self.schedule is not None:
            self.schedule.observe(loss)
        self.last_valid = valid_metrics
        return train_metrics, valid_metrics

    def _restore_best(self):
        """Restore the best validated parameters unless they are the current ones.

        The best validation loss is never above the last one, so the result is
        never worse than the last validated state.
        """
        best = self.early_stopping
        if not self.options.restore_best or best.best_params is None:
            return
        if best.best_step == self.step:
            return
        for name, p in self.graph.params.items():
            p.set_value(np.array(best.best_params[name], copy=True))
        self.restored_step = best.best_step
