r"""The training loop: batches in, updates applied, metrics out.

:class:`Trainer` compiles one training function and one validation function
from an :func:`~trainkit.training.assembly.assemble`-d graph and drives them:

- ``itertrain(train, valid)`` yields ``(train_metrics, valid_metrics)`` after
  every validation; ``train(...)`` runs it to the end and returns the last
  pair.
- Validation runs the *clean* graph (no noise, no dropout); its ``loss`` is
  the base loss plus the weighted penalties, and early stopping watches it.
  What ``train_metrics`` and ``valid_metrics`` hold, and how they are
  averaged: :mod:`~trainkit.training.validation`.
- Validation happens every ``validate_every`` updates, or at the end of each
  epoch when it is None, and always on the final state: when training ends
  on a limit, the last state is validated if it was not, so ``restore_best``
  never compares against an unvalidated state.
- Early stopping (:mod:`~trainkit.training.early_stopping`) counts
  ``patience``; with ``restore_best`` the best validated parameters are
  restored at the end (the optimizer state is left as it is), and the
  metrics returned and yielded last are theirs.
- The learning rate lives in a shared variable that a schedule rewrites
  between updates, so nothing recompiles.
- The step (:mod:`~trainkit.training.step`) is one compiled function, or
  with ``accumulate=N`` (or ``split_update=True``) two: the gradients of N
  batches are accumulated, then one update applied. ``step`` counts
  updates, not batches.
- Updates are guarded: when the loss or a gradient is not finite, no
  parameter or optimizer state changes, and ``nan_policy`` decides whether
  to raise, skip or stop (:mod:`~trainkit.training.progress`). A skipped
  update still counts as a step (``max_updates``, ``validate_every``,
  ``save_every`` and the schedule count it, as PyTorch's schedulers keep
  stepping when a ``GradScaler`` skips one; ``adam/t`` does not).
- The run's state has owners: :class:`~trainkit.training.progress.Progress`
  (counters, ending, interruption), early stopping, the metric window, the
  schedule and the dataset each give ``state()`` and take ``set_state()``;
  :meth:`Trainer.parts` names them, and a checkpoint
  (:mod:`~trainkit.training.checkpoints`) is their states plus the shared
  variables, taken where training continues from, so ``resume=`` continues
  to bitwise-identical parameters.
- ``trainer.stop(reason)`` (from a callback, or a signal handler installed
  with :func:`trainkit.training.signals.stop_on_signals`) ends training after
  the current update, with a final checkpoint when ``save_progress`` is set.
  When the caller stops iterating (``break``, ``close()``), training ends as
  it would on a limit, minus the final validation. When an exception ends
  training (``nan_policy='raise'``, a callback error), nothing is saved or
  restored: parameters stay as the exception left them.
- Parameters are numpy arrays after training, whatever the backend.
- Data parallel (``data_parallel='mpi'``, or a ``communicator`` of more
  than one process; see :mod:`trainkit.training.parallel` and
  ``docs/distributed.md``): every process runs this loop on the same data,
  computes gradients on its shard of each global batch, and applies the
  same all-reduced update; every decision (non-finite, stop requests, early
  stopping, schedules, checkpoints) is taken on reduced values, so the
  replicas stay bitwise identical. Only rank 0 shows progress, logs and
  writes files.
- Progress bars, log lines, metrics files and checkpoints are callbacks
  (:mod:`trainkit.training.callbacks`) that hook in from outside the loop.
"""

import time
from collections import OrderedDict

import pytensor
from pytensor.graph.basic import Variable

import regularizers
from regularizers.errors import InvalidArgument

from .. import distributed
from . import checkpoints, ema, metric_names, monitors, state, updates
from .assembly import assemble, floatx_of
from .early_stopping import EarlyStopping
from .preparation import compile_functions, prepare_run
from .progress import Progress, planned_updates
from .schedules.rate import LearningRate
from .spec import parse
from .threads import limit_threads
from .updates import MetricWindow
from .validation import validate

__all__ = ["Trainer"]


def _progress(name):
    """A trainer attribute that is the run's :class:`Progress` attribute ``name``."""
    return property(
        lambda self: getattr(self.progress, name),
        lambda self, value: setattr(self.progress, name, value),
        doc=f"The run's ``{name}`` (:class:`~trainkit.training.progress.Progress`).",
    )


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
        if spec.options.class_weight is not None:  # net.train builds it into the loss
            raise InvalidArgument(
                "class_weight",
                "weighs a network's loss by class: give it to net.train (a Trainer is handed "
                "its loss already built)",
                spec.options.class_weight,
            )
        self.spec = spec
        self.options = spec.options
        self.algo = spec.algo
        self.graph, self.inputs, self.specs = graph, list(inputs), specs
        #: the base loss on the clean graph (what validation reports, penalties added)
        self.loss = loss
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
        #: the averaged parameters (``ema``), or None
        self.ema = ema.build(self)
        self.metrics = OrderedDict(metrics or {})
        self.monitors = monitors.build(self.options.monitors, graph)
        metric_names.check(self)
        state.seed_generators(self)
        #: the compiled step (:class:`~trainkit.training.step.CompiledStep`) and validation
        #: function; None until compiled
        self.compiled = self.validation_function = None
        self.checkpointer = None
        self.loggers = []  # the loggers of the last run (trainkit.training.loggers)
        self.early_stopping = EarlyStopping(self.options.patience, self.options.min_improvement)
        #: the run's counters, its ending and its interruption
        self.progress = Progress()
        #: the training metrics summed since the last validation
        self.window = MetricWindow()
        self.reset()

    # -- state -------------------------------------------------------------------

    def reset(self):
        """Forget progress: counters, early stopping, metric window."""
        self.progress.reset()
        self.early_stopping.reset()
        self.window.clear()
        self.dataset = None

    def parts(self):
        """The parts of a run a checkpoint holds, by name: each gives its state with
        ``state()`` and takes it back with ``set_state(state)``."""
        parts = OrderedDict(
            progress=self.progress,
            early_stopping=self.early_stopping,
            window=self.window,
            dataset=self.dataset,
        )
        if self.schedule is not None:
            parts["schedule"] = self.schedule
        return parts

    def state(self):
        """Every part's state, by part name (JSON-ready; the variables are arrays apart)."""
        return OrderedDict((name, part.state()) for name, part in self.parts().items())

    def set_state(self, states, best_params=None):
        """Continue from :meth:`state` (``best_params``: early stopping's best parameters).

        A part missing from ``states``, or whose state is None, is left as it is.
        """
        for name, part in self.parts().items():
            if name == "early_stopping" and name in states:
                part.set_state(states[name], best_params)
            elif states.get(name) is not None:
                part.set_state(states[name])

    # the run's counters and ending, by the names callbacks and the command line read
    step = _progress("step")
    skipped = _progress("skipped")
    elapsed = _progress("elapsed")
    validated_at = _progress("validated_at")
    stop_reason = _progress("stop_reason")
    diverged = _progress("diverged")
    best_metrics = _progress("best_metrics")
    restored_step = _progress("restored_step")
    last_loss = _progress("last_loss")
    last_valid = _progress("last_valid")
    #: the signal that interrupted training ('SIGINT', 'SIGTERM'), or None
    interrupted = _progress("interrupted")

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
            self.progress.request_stop(reason)
        else:
            self.progress.end(reason)

    @property
    def was_interrupted(self):
        """The interruption every process agrees on (this one's when alone)."""
        return self.progress.was_interrupted(self.parallel)

    # the learning rate: its variable, the rate given, the run's schedule
    lr = property(lambda self: self.rate.variable)
    base_lr = property(lambda self: self.rate.base)
    schedule = property(lambda self: self.rate.schedule)

    @property
    def state_variables(self):
        """Every shared variable training changes, by name (params, optimizer, rngs, lr)."""
        return state.state_variables(self)

    @property
    def updates_per_epoch(self):
        """Updates per epoch, if known (an epoch's batches, ``accumulate`` at a time)."""
        batches = self.dataset.batches_per_epoch if self.dataset is not None else None
        return None if not batches else -(-batches // self.options.accumulate)

    @property
    def planned_updates(self):
        """Total updates the run is set up for, if known (for progress bars)."""
        return planned_updates(self.options, self.updates_per_epoch)

    def save_checkpoint(self, path):
        """Write everything needed to continue training to ``path`` (atomically)."""
        state.as_numpy(self)
        checkpoints.save(self, path)

    # -- compiling ---------------------------------------------------------------

    def compile(self):
        """Compile the step and the validation function, unless they are compiled."""
        if self.compiled is None:
            with floatx_of(self.graph.params.values()):
                self._compile()

    def uncompile(self):
        """Drop the compiled functions: the next run compiles again."""
        self.compiled = self.validation_function = None

    def _compile(self):
        self.compiled, self.train_names, self.validation_function, self.valid_names = (
            compile_functions(self)
        )

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
        valid_ds, hooks = prepare_run(self, train, valid)
        with limit_threads(o.threads):
            if self.compiled is None:
                self._call(hooks, "on_compile")  # the checks passed; compiling starts
                self.compile()
            started = time.monotonic() - self.elapsed
            try:
                self._call(hooks, "on_start")
                while self.stop_reason is None:
                    reason = self.progress.limit_reached(o, self.dataset, self.early_stopping)
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
                    if due or (self.stop_reason and not self.was_interrupted):
                        pair = validate(self, valid_ds)
                        self._call(hooks, "on_validation", *pair)
                    self._call(hooks, "on_step_end")
                    if pair is not None:
                        yield pair
                self.progress.judge(o.nan_policy, self.dataset.drawn)
                self._save_final()
                if self.validated_at != self.step and self.step > 0 and not self.was_interrupted:
                    self.elapsed = time.monotonic() - started
                    pair = validate(self, valid_ds)
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
                state.as_numpy(self)

    def _finish(self, hooks):
        if self.options.restore_best:
            # batchnorm's running statistics of the best step too (older checkpoints lack them)
            kept = self.early_stopping.best_params or {}
            running = {n: v for n, v in ema.running_state(self).items() if n in kept}
            restored = self.early_stopping.restore({**self.graph.params, **running}, self.step)
            if restored is not None:
                self.progress.restored_step = restored
        if self.ema is not None:
            self.ema.finish(self)
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

    def _update(self):
        """Make one update: one batch, or ``accumulate`` batches and one update."""
        self.rate.set(self.step)
        updates.update(self)
        self.step += 1

    def record(self, values):
        """Add one update's training metrics to the window (``values[0]``: its loss)."""
        self.window.add(values)
        self.progress.last_loss = float(values[0])

    def non_finite(self, epoch, index):
        """Apply ``nan_policy`` to a non-finite update of batch ``index`` in ``epoch``
        (:meth:`~trainkit.training.progress.Progress.non_finite`)."""
        self.progress.non_finite(self.options.nan_policy, epoch, index)

    def _save_final(self):
        if self.checkpointer is not None:
            self.checkpointer.save_final(self)
