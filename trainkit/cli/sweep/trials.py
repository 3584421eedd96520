"""Running a sweep's trials: the objective, a worker's loop, and recovering stopped trials.

:class:`_Objective` runs one trial: it samples the space, checks the
trial's config like ``trainkit train`` does, and trains in
``trial-<n>/`` (resuming from the checkpoint when the trial is a retry),
reporting every validation to the pruner. :func:`work` is one worker's
loop, run in this process or, by :func:`worker_main`, in a worker process
of its own; :func:`recover` retries trials that a signal stopped or whose
process on this host died.
"""

import json
import math
import os
import socket
import sys
from pathlib import Path

import click

from ...tuning import MetricError, PruningCallback, require_optuna
from .. import run
from ..errors import one_line
from .storage import no_experimental_warnings, open_storage, quiet_optuna

__all__ = ["COUNTED", "Interrupted", "TrialFailed", "counted", "recover", "work", "worker_main"]


#: trial states that count towards --trials (and failed trials that were not retried)
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


class Interrupted(Exception):
    """A trial stopped by a signal: the worker stops, the trial is retried later.

    An ``Exception`` (not a ``BaseException``), so that Optuna records the
    trial as failed (with ``interrupted`` among its attributes, which
    :func:`recover` retries) instead of leaving it "running".
    """

    def __init__(self, signal_name):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class TrialFailed(Exception):
    """A trial that failed on its config or data: one line, kept in the trial's ``error``."""


class _Signals:
    """Signals that arrive outside the training loop, kept until the trial is recorded.

    Inside the loop :func:`~trainkit.training.signals.stop_on_signals` takes
    over (the trainer stops after the update and checkpoints). Before it (a
    signal during checks or compiling) the run is stopped as soon as it
    starts (``on_compile``/``on_start``); after it (saving, scoring) the
    trial's result is recorded first, then the worker stops.
    """

    def __init__(self):
        self.name = None
        self._previous = {}

    def __enter__(self):
        import signal
        import threading

        from ...training.signals import SIGNALS

        if threading.current_thread() is threading.main_thread():

            def keep(signum, frame):
                self.name = self.name or signal.Signals(signum).name

            self._previous = {sig: signal.signal(sig, keep) for sig in SIGNALS}
        return self

    def __exit__(self, *exc):
        import signal

        for sig, old in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        self._previous = {}
        return False

    def _stop(self, trainer):
        if self.name and trainer.stop_reason is None:
            trainer.interrupted = self.name
            trainer.stop(f"interrupted by {self.name}")

    on_compile = on_start = _stop


def _read_metrics(run_dir):
    """The rows of a run's metrics.csv or metrics.jsonl (numbers as floats)."""
    import csv

    rows = []
    if (run_dir / "metrics.jsonl").exists():
        with open(run_dir / "metrics.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    elif (run_dir / "metrics.csv").exists():
        with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return rows


def _best(values, direction):
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    return min(finite) if direction == "minimize" else max(finite)


class _Objective:
    """Run one trial: sample the space, check the config, train in ``trial-<n>/``."""

    def __init__(self, spec, sweep_dir, worker=0, callbacks=(), echo=click.echo):
        self.spec = spec
        self.sweep_dir = Path(sweep_dir)
        self.worker = worker
        self.callbacks = list(callbacks)
        self.echo = echo

    def __call__(self, trial):
        label = f"trial {trial.number}"
        signals = _Signals()
        try:
            with signals:
                value = self._run(trial, label, signals)
        except (Interrupted, MetricError):
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: the trial is retried later
            trial.set_user_attr("interrupted", "SIGINT")
            raise Interrupted("SIGINT") from None
        except (ValueError, TypeError, LookupError, OSError, FloatingPointError) as error:
            line = one_line(error)
            self.echo(f"{label} failed: {line}")
            trial.set_user_attr("error", line)
            raise TrialFailed(line) from None
        if signals.name:  # training had finished: the result is kept, then the worker stops
            self.pending = signals.name
        return value

    pending = None

    def _run(self, trial, label, signals):
        optuna = require_optuna()
        spec = self.spec
        values = {key: param.suggest(trial) for key, param in spec.space.items()}
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
        # a retried trial carries the user attributes of the one it retries
        previous = trial.user_attrs.get("run_dir")
        run_dir = Path(previous) if previous else self.sweep_dir / f"trial-{trial.number}"
        resume = bool(previous) and (run_dir / "checkpoint.npz").exists()
        trial.set_user_attr("run_dir", os.fspath(run_dir.resolve()))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("interrupted", None)
        trial.set_user_attr("error", None)
        cfg = spec.trial_config(values, label)
        net = run.prepare(cfg)
        pruning = PruningCallback(trial, spec.metric, spec.direction)
        if resume:
            # the pruner sees the whole curve; training continues after the checkpoint
            for row in _read_metrics(run_dir):
                if spec.metric in row:
                    trial.report(float(row[spec.metric]), int(row["step"]))
        began = f"{label}{' (resuming ' + os.fspath(run_dir) + ')' if resume else ''}: {shown}"
        self.echo(began)
        result = run.run_config(
            cfg,
            run_dir,
            resume=resume,
            callbacks=[signals, pruning, *self.callbacks],
            echo=None,
            net=net,
            log=False,
        )
        trainer = result.trainer
        trial.set_user_attr("steps", int(trainer.step))
        trial.set_user_attr("stop_reason", result.stop_reason)
        if result.interrupted:
            trial.set_user_attr("interrupted", result.interrupted)
            self.echo(f"{label}: {result.stop_reason} at step {trainer.step}; checkpoint saved")
            raise Interrupted(result.interrupted)
        rows = _read_metrics(run_dir)
        if rows and spec.metric not in rows[0]:
            raise MetricError(
                f"metric {spec.metric!r}: not measured; metrics are "
                f"{', '.join(k for k in rows[0] if k.startswith(('valid_', 'train_')))}"
            )
        value = _best([float(r[spec.metric]) for r in rows], spec.direction)
        if result.score is not None:
            trial.set_user_attr("score", float(result.score))
        if pruning.pruned is not None:
            self.echo(f"{label}: {pruning.pruned}")
            raise optuna.TrialPruned(pruning.pruned)
        if math.isnan(value):
            raise FloatingPointError(f"{spec.metric}: no finite value in {trainer.step} updates")
        self.echo(f"{label}: {spec.metric} {value:.6g} after {trainer.step} updates")
        return value


def counted(study):
    """Trials so far; a failed trial counts unless it was retried (its retry counts)."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if t.state.name in COUNTED or t.number not in retried)


def _waiting(study):
    optuna = require_optuna()
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))


def _load_study(spec, storage, study_name, worker):
    optuna = quiet_optuna()
    # Optuna keeps neither pruner nor sampler: without them load_study falls back to defaults
    return optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=spec.sampler(worker),
        pruner=spec.pruner(),
    )


def work(spec, where, study_name, sweep_dir, worker, trials, callbacks=(), echo=click.echo):
    """One worker: run trials until the study has ``trials`` of them (or none wait)."""
    optuna = quiet_optuna()
    storage = open_storage(where, spec.heartbeat, spec.retries)
    study = _load_study(spec, storage, study_name, worker)
    objective = _Objective(spec, sweep_dir, worker, callbacks, echo)
    # a failed trial is the one line the objective printed, not Optuna's traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    while True:
        manager = no_experimental_warnings()
        try:
            # a database's dead trials (no heartbeat) fail now and come back WAITING
            optuna.storages.fail_stale_trials(study)
            if counted(study) >= trials and not _waiting(study):
                break
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        finally:
            manager.__exit__(None, None, None)
        if objective.pending:
            raise Interrupted(objective.pending)


def worker_main(spec, where, study_name, sweep_dir, worker, trials, callbacks):
    """The body of a worker process: exit status 0, 2 (an error), 130/143 (a signal)."""

    def echo(line, err=False):
        print(f"[worker {worker}] {line}", file=sys.stderr if err else sys.stdout, flush=True)

    try:
        work(spec, where, study_name, sweep_dir, worker, trials, callbacks, echo)
    except Interrupted as error:
        sys.exit({"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}.get(error.signal_name, 1))
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValueError, TypeError, OSError, LookupError, click.ClickException) as error:
        text = error.format_message() if isinstance(error, click.ClickException) else error
        print(
            f"error: [worker {worker}] {' '.join(str(text).split())}", file=sys.stderr, flush=True
        )
        sys.exit(2)


def recover(study, retries, echo):
    """Retry trials that a signal stopped, and running trials whose process on this host died.

    Database storages find dead workers by their heartbeat; a journal file
    has none, so a RUNNING trial is taken for dead only when its process was
    on this host and is gone.
    """
    optuna = require_optuna()
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    here = socket.gethostname()
    count = 0
    for trial in trials:
        stale = False
        if trial.state == state.RUNNING and trial.user_attrs.get("host") == here:
            pid = trial.user_attrs.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and not _alive(pid):
                study._storage.set_trial_state_values(trial._trial_id, state=state.FAIL)
                stale = True
        interrupted = trial.state == state.FAIL and trial.user_attrs.get("interrupted")
        if not (stale or interrupted) or trial.number in retried:
            continue
        if len(trial.system_attrs.get("retry_history", [])) >= retries:
            continue
        manager = no_experimental_warnings()
        try:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)(study, trial)
        finally:
            manager.__exit__(None, None, None)
        why = "its process died" if stale else f"it was {interrupted}"
        echo(f"trial {trial.number}: {why}; retrying it from {trial.user_attrs.get('run_dir')}")
        count += 1
    return count


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
