"""``trainkit sweep``: hyperparameter sweeps of a TOML config on Optuna (see docs/sweeps.md).

::

    trainkit sweep run.toml --trials 50 --workers 2          # runs/run/trial-<n>/ ...
    trainkit sweep run.toml --trials 50 --storage postgresql://host/db   # on every host
    trainkit sweep --status runs/run                         # the trials, best first
    trainkit sweep --best runs/run                           # runs/run/best.toml

A sweep directory holds ``sweep.toml`` (the sweep file as given),
``sweep.json`` (where the study lives), ``journal.log`` (the default
storage: Optuna's journal file) and one ordinary run directory per trial,
``trial-<n>/``, written by the one process that runs the trial. ``--trials``
is the study's total: running the command again (or on another host against
the same storage) continues the same study up to that many trials.

:func:`run_sweep` is the same as a Python call; it returns the Optuna study.
"""

import json
import math
import multiprocessing
import os
import socket
import sys
import warnings
from pathlib import Path

import click

from ..tuning import MetricError, PruningCallback, require_optuna
from . import config, run
from .commands import _handle_errors, cli
from .config import ConfigError
from .sweepconfig import parse

__all__ = ["run_sweep", "status_lines", "best_config", "open_storage", "STATES"]

#: trial states that count towards --trials (and failed trials that were not retried)
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
STATES = ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")


class SweepError(click.ClickException):
    """A problem with a sweep's input or its storage: one line, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class _Interrupted(BaseException):
    """A trial stopped by SIGINT/SIGTERM: the worker stops, the trial is retried later."""

    def __init__(self, signal_name):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


def _quiet_optuna():
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _no_experimental_warnings():
    optuna = require_optuna()
    manager = warnings.catch_warnings()
    manager.__enter__()
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    warnings.simplefilter("ignore", FutureWarning)
    return manager


def _masked(url):
    """``url`` with its password replaced by ``***`` (what sweep.json keeps)."""
    if "://" not in url or "@" not in url.split("://", 1)[1]:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def open_storage(where, heartbeat=60, retries=3):
    """An Optuna storage from ``where``: a database URL, or a journal file's path.

    A database URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``)
    gets a heartbeat every ``heartbeat`` seconds: a trial whose worker has
    not beaten for two of them is failed and retried (up to ``retries``
    times), and the retry resumes from the trial's checkpoint. A path is a
    journal file (Optuna's ``JournalFileBackend``; the lock is a symlink, or
    an open-file lock with ``open-lock:`` before the path, for file systems
    without symlinks).
    """
    optuna = require_optuna()
    if "://" in where:
        manager = _no_experimental_warnings()
        try:
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
            return optuna.storages.RDBStorage(
                where,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=callback,
            )
        except ImportError as error:  # a database driver
            raise SweepError(f"--storage {_masked(where)}: {error}") from None
        except Exception as error:  # sqlalchemy's own errors
            raise SweepError(f"--storage {_masked(where)}: cannot open: {error}") from None
        finally:
            manager.__exit__(None, None, None)
    journal = optuna.storages.journal
    lock = None
    if where.startswith("open-lock:"):
        where = where[len("open-lock:") :]
        lock = journal.JournalFileOpenLock(where)
    os.makedirs(Path(where).parent, exist_ok=True)
    return journal.JournalStorage(journal.JournalFileBackend(where, lock_obj=lock))


# -- trials -------------------------------------------------------------------------


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
        optuna = require_optuna()
        spec = self.spec
        values = {key: param.suggest(trial) for key, param in spec.space.items()}
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
        # a retried trial carries the user attributes of the one it retries
        previous = trial.user_attrs.get("run_dir")
        run_dir = Path(previous) if previous else self.sweep_dir / f"trial-{trial.number}"
        resume = bool(previous) and (run_dir / "checkpoint.npz").exists()
        trial.set_user_attr("run_dir", os.fspath(run_dir))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("interrupted", None)
        label = f"trial {trial.number}"
        try:
            cfg = spec.trial_config(values, label)
            net = run.prepare(cfg)
        except ConfigError as error:
            self.echo(f"{label}: failed: {error}")
            trial.set_user_attr("error", str(error))
            raise
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
            callbacks=[pruning, *self.callbacks],
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
            raise _Interrupted(result.interrupted)
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
            message = f"{spec.metric}: no finite value in {trainer.step} updates"
            self.echo(f"{label}: failed: {message}")
            trial.set_user_attr("error", message)
            raise FloatingPointError(message)
        self.echo(f"{label}: {spec.metric} {value:.6g} after {trainer.step} updates")
        return value


def _counted(study):
    """Trials so far; a failed trial counts unless it was retried (its retry counts)."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if t.state.name in COUNTED or t.number not in retried)


def _waiting(study):
    optuna = require_optuna()
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))


def _load_study(spec, storage, study_name, worker):
    optuna = _quiet_optuna()
    # Optuna keeps neither pruner nor sampler: without them load_study falls back to defaults
    return optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=spec.sampler(worker),
        pruner=spec.pruner(),
    )


def _work(spec, where, study_name, sweep_dir, worker, trials, callbacks=(), echo=click.echo):
    """One worker: run trials until the study has ``trials`` of them (or none wait)."""
    optuna = _quiet_optuna()
    storage = open_storage(where, spec.heartbeat, spec.retries)
    study = _load_study(spec, storage, study_name, worker)
    objective = _Objective(spec, sweep_dir, worker, callbacks, echo)
    while True:
        manager = _no_experimental_warnings()
        try:
            # a database's dead trials (no heartbeat) fail now and come back WAITING
            optuna.storages.fail_stale_trials(study)
            if _counted(study) >= trials and not _waiting(study):
                break
            study.optimize(objective, n_trials=1, catch=(ConfigError, FloatingPointError))
        finally:
            manager.__exit__(None, None, None)


def _worker_main(spec, where, study_name, sweep_dir, worker, trials, callbacks):
    """The body of a worker process: exit status 0, 2 (an error), 130/143 (a signal)."""

    def echo(line, err=False):
        print(f"[worker {worker}] {line}", file=sys.stderr if err else sys.stdout, flush=True)

    try:
        _work(spec, where, study_name, sweep_dir, worker, trials, callbacks, echo)
    except _Interrupted as error:
        sys.exit({"SIGINT": 130, "SIGTERM": 143}.get(error.signal_name, 1))
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValueError, TypeError, OSError, LookupError, click.ClickException) as error:
        text = error.format_message() if isinstance(error, click.ClickException) else error
        print(
            f"error: [worker {worker}] {' '.join(str(text).split())}", file=sys.stderr, flush=True
        )
        sys.exit(2)


def _recover(study, retries, echo):
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
        manager = _no_experimental_warnings()
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


def run_sweep(
    path,
    trials=20,
    workers=1,
    storage=None,
    run_dir=None,
    study_name=None,
    callbacks=(),
    echo=click.echo,
):
    """Run the sweep a TOML file describes; return the Optuna study.

    Parameters
    ----------
    path : str or Path
        A run config with a ``[sweep]`` section (see :mod:`trainkit.cli.sweepconfig`).
    trials : int
        The study's total number of trials (finished, pruned and running).
    workers : int
        Processes on this machine, sharing the study through its storage.
    storage : str, optional
        An Optuna database URL, or a journal file's path (default:
        ``RUN_DIR/journal.log``).
    run_dir : str or Path, optional
        The sweep directory (default ``runs/<file name without .toml>``).
    study_name : str, optional
        Default: the sweep directory's name.
    callbacks : sequence
        Extra trainer callbacks for every trial (workers > 1: picklable).

    Raises
    ------
    ConfigError
        A bad sweep file (before anything compiles).
    """
    optuna = _quiet_optuna()
    if trials < 1 or workers < 1:
        raise SweepError(f"--trials and --workers must be at least 1, got {trials} and {workers}")
    spec = parse(path)
    echo(f"checking the space ... {spec.check()} configs built")
    sweep_dir = Path(run_dir) if run_dir is not None else Path("runs") / Path(path).stem
    study_name = study_name or sweep_dir.resolve().name
    where = storage or os.fspath(sweep_dir / "journal.log")
    os.makedirs(sweep_dir, exist_ok=True)
    store = open_storage(where, spec.heartbeat, spec.retries)
    direction = spec.direction
    study = optuna.create_study(
        study_name=study_name,
        storage=store,
        direction=direction,
        sampler=spec.sampler(),
        pruner=spec.pruner(),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise SweepError(f"study {study_name!r}: it maximises/minimises otherwise than {path} says")
    held = study.user_attrs.get("trainkit_sweep")
    if held is None:
        study.set_user_attr("trainkit_sweep", spec.fingerprint())
        study.set_user_attr("trainkit_base", json.dumps(spec.base))
        study.set_user_attr("trainkit_source", os.fspath(path))
    elif held != spec.fingerprint():
        raise SweepError(
            f"{sweep_dir}: study {study_name!r} was started from another config or space; "
            f"use another --run-dir (or --study)"
        )
    (sweep_dir / "sweep.toml").write_text(Path(path).read_text(encoding="utf-8"), encoding="utf-8")
    (sweep_dir / "sweep.json").write_text(
        json.dumps({"storage": _masked(where), "study": study_name, "source": os.fspath(path)})
        + "\n",
        encoding="utf-8",
    )
    _recover(study, spec.retries, echo)
    done = _counted(study)
    echo(
        f"sweep {study_name}: {done} of {trials} trials so far; {workers} worker"
        f"{'s' if workers > 1 else ''}; storage {_masked(where)}; {spec.pruner_name} pruning "
        f"on {spec.metric} ({direction})"
    )
    if workers == 1:
        try:
            _work(spec, where, study_name, sweep_dir, 0, trials, callbacks, echo)
        except _Interrupted as error:
            raise click.exceptions.Exit(
                {"SIGINT": 130, "SIGTERM": 143}.get(error.signal_name, 1)
            ) from None
    else:
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(
                target=_worker_main,
                args=(spec, where, study_name, sweep_dir, k, trials, tuple(callbacks)),
                name=f"trainkit-sweep-{k}",
            )
            for k in range(workers)
        ]
        for process in processes:
            process.start()
        codes = []
        for process in processes:
            while True:
                try:
                    process.join()
                    break
                except KeyboardInterrupt:  # the workers got it too; wait for their checkpoints
                    continue
            codes.append(process.exitcode)
        bad = [c for c in codes if c]
        if bad:
            code = 130 if 130 in bad else 143 if 143 in bad else max(bad) if max(bad) > 0 else 1
            echo(f"workers ended with status {', '.join(map(str, codes))}", err=True)
            raise click.exceptions.Exit(code)
    return study


# -- status, best -------------------------------------------------------------------


def _open_existing(sweep_dir, storage):
    optuna = _quiet_optuna()
    sweep_dir = Path(sweep_dir)
    info_path = sweep_dir / "sweep.json"
    if not info_path.exists():
        raise SweepError(f"{sweep_dir}: not a sweep directory (no sweep.json)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    where = storage or info["storage"]
    if "***" in where:
        raise SweepError(f"{sweep_dir}: give --storage URL (sweep.json keeps no password)")
    store = open_storage(where)
    try:
        return optuna.load_study(study_name=info["study"], storage=store)
    except KeyError as error:
        raise SweepError(f"{sweep_dir}: study {info['study']!r} not in {_masked(where)}") from error


def _order(study):
    """Trials best first: finished by value, then pruned by their last value, then the rest."""
    maximize = study.direction.name == "MAXIMIZE"
    rank = {s: i for i, s in enumerate(STATES)}

    def value(trial):
        if trial.value is not None:
            return trial.value
        if trial.intermediate_values:
            return trial.intermediate_values[max(trial.intermediate_values)]
        return math.nan

    def key(trial):
        v = value(trial)
        v = math.inf if math.isnan(v) else (-v if maximize else v)
        return (rank[trial.state.name], v, trial.number)

    return [(t, value(t)) for t in sorted(study.get_trials(deepcopy=False), key=key)]


def status_lines(sweep_dir, storage=None):
    """The trials of a sweep, best first, as lines of text."""
    study = _open_existing(sweep_dir, storage)
    ordered = _order(study)
    counts = {}
    for trial, _ in ordered:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials yet"
    lines = [f"study {study.study_name} ({study.direction.name.lower()}): {summary}"]
    lines.append(f"{'trial':>5}  {'state':<9} {'value':>11} {'steps':>6}  params  (run dir)")
    for trial, value in ordered:
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        run_dir = trial.user_attrs.get("run_dir", "")
        shown = "" if math.isnan(value) else f"{value:.6g}"
        steps = trial.user_attrs.get("steps", "")
        lines.append(
            f"{trial.number:>5}  {trial.state.name.lower():<9} {shown:>11} {steps!s:>6}  "
            f"{params}  ({run_dir})"
        )
    return lines


def best_config(sweep_dir, storage=None):
    """TOML text of the best finished trial's config (and its trial), for ``--best``."""
    from .sweepconfig import SweepSpec

    study = _open_existing(sweep_dir, storage)
    try:
        best = study.best_trial
    except ValueError:
        raise SweepError(f"{sweep_dir}: no trial has finished yet") from None
    base = json.loads(study.user_attrs["trainkit_base"])
    source = study.user_attrs.get("trainkit_source", "sweep")
    space = json.loads(study.user_attrs["trainkit_sweep"])["space"]
    from .sweepconfig import Param

    params = {k: Param(**v) for k, v in space.items()}
    spec = SweepSpec(source, Path(source).parent, base, params)
    values = {k: params[k].decode(v) for k, v in best.params.items()}
    cfg = spec.trial_config(values, f"trial {best.number}")
    return config.dumps(
        cfg.as_dict(),
        comments=[
            f"The best trial of sweep {study.study_name}: trial {best.number}, "
            f"value {best.value:.6g} ({study.direction.name.lower()}), in "
            f"{best.user_attrs.get('run_dir', '?')}",
            f"from {source}; train it with: trainkit train THIS_FILE",
        ],
    )


# -- the command --------------------------------------------------------------------


@cli.command()
@click.argument("target", metavar="CONFIG | RUN_DIR")
@click.option("--trials", default=20, show_default=True, help="The study's total number of trials.")
@click.option("--workers", default=1, show_default=True, help="Worker processes on this machine.")
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage: a database URL (postgresql://..., mysql://..., sqlite:///...) shared "
    "by many machines, or a journal file (default: RUN_DIR/journal.log).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    help="Sweep directory (default: runs/NAME); trials go to RUN_DIR/trial-<n>/.",
)
@click.option("--study", "study_name", metavar="NAME", help="Study name (default: RUN_DIR's name).")
@click.option(
    "--status", is_flag=True, help="Print the trials of the sweep in RUN_DIR, best first."
)
@click.option("--best", is_flag=True, help="Write the best trial's config to RUN_DIR/best.toml.")
@click.option("-o", "--output", metavar="FILE", help="With --best: where to write ('-': stdout).")
@_handle_errors
def sweep(target, trials, workers, storage, run_dir, study_name, status, best, output):
    """Sweep the hyperparameters of a config with Optuna; every trial is a run directory.

    CONFIG is a run config with a [sweep] section: metric, direction, pruner
    (successive_halving, hyperband, median, threshold, none), sampler (tpe,
    random, grid), seed, and [sweep.space] keyed by --set's dotted names:

    \b
        [sweep.space]
        "training.learning_rate" = {low = 1e-4, high = 1e-1, log = true}
        "training.algo" = ["adam", "nadam"]

    Each trial trains in RUN_DIR/trial-<n>/ (config.toml, metrics, checkpoint,
    model), reports every validation to the pruner, and is checked like a
    config given to `trainkit train` before anything compiles. With
    --status or --best, the argument is the sweep's RUN_DIR. Needs the
    optional extra: pip install 'trainkit[sweep]'.
    """
    try:
        if status or best:
            if status and best:
                raise SweepError("--status or --best, not both")
            if status:
                click.echo("\n".join(status_lines(target, storage)))
                return
            text = best_config(target, storage)
            if output == "-":
                click.echo(text, nl=False)
                return
            path = Path(output) if output else Path(target) / "best.toml"
            path.write_text(text, encoding="utf-8")
            click.echo(f"wrote {path}")
            return
        if output:
            raise SweepError("-o/--output goes with --best")
        if Path(target).is_dir():
            raise SweepError(
                f"{target}: a directory; give a sweep config, or --status/--best {target}"
            )
        study = run_sweep(target, trials, workers, storage, run_dir, study_name)
    except ImportError as error:
        raise SweepError(str(error)) from None
    except MetricError as error:
        raise SweepError(str(error)) from None
    sweep_dir = run_dir or Path("runs") / Path(target).stem
    lines = status_lines(sweep_dir, storage)
    click.echo("\n".join(lines[:7] + (["  ..."] if len(lines) > 7 else [])))
    click.echo(
        f"all trials: trainkit sweep --status {sweep_dir}; best config: "
        f"trainkit sweep --best {sweep_dir}"
    )
    del study
