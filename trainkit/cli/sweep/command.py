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

The sweep's parts: :mod:`~trainkit.cli.sweep.spec` (the ``[sweep]``
section), :mod:`~trainkit.cli.sweep.space` (``[sweep.space]``),
:mod:`~trainkit.cli.sweep.datacheck` (the corners of the space against the
data), :mod:`~trainkit.cli.sweep.storage` (the study's storage),
:mod:`~trainkit.cli.sweep.trials` (the objective and the workers),
:mod:`~trainkit.cli.sweep.status` (``--status``, ``--best``).
"""

import json
import multiprocessing
import os
from pathlib import Path

import click

from ...tuning import MetricError
from ..errors import SweepError, handle_errors
from .spec import parse
from .status import best_config, status_lines
from .storage import absolute, masked, open_storage, quiet_optuna
from .trials import Interrupted, counted, recover, work, worker_main

__all__ = ["run_sweep", "sweep"]


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
        A run config with a ``[sweep]`` section (see :mod:`trainkit.cli.sweep.spec`).
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
    optuna = quiet_optuna()
    if trials < 1 or workers < 1:
        raise SweepError(f"--trials and --workers must be at least 1, got {trials} and {workers}")
    spec = parse(path)
    echo(f"checking the space ... {spec.check()} configs built, the data checked against each")
    sweep_dir = Path(run_dir) if run_dir is not None else Path("runs") / Path(path).stem
    study_name = study_name or sweep_dir.resolve().name
    where = absolute(storage or os.fspath(sweep_dir / "journal.log"))
    os.makedirs(sweep_dir, exist_ok=True)
    store = open_storage(
        where, spec.heartbeat, spec.retries, note=lambda line: echo(line, err=True)
    )
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
        json.dumps({"storage": masked(where), "study": study_name, "source": os.fspath(path)})
        + "\n",
        encoding="utf-8",
    )
    recover(study, spec.retries, echo)
    done = counted(study)
    echo(
        f"sweep {study_name}: {done} of {trials} trials so far; {workers} worker"
        f"{'s' if workers > 1 else ''}; storage {masked(where)}; {spec.pruner_name} pruning "
        f"on {spec.metric} ({direction})"
    )
    if workers == 1:
        try:
            work(spec, where, study_name, sweep_dir, 0, trials, callbacks, echo)
        except Interrupted as error:
            raise click.exceptions.Exit(_signal_status(error.signal_name)) from None
    else:
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(
                target=worker_main,
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
    _all_failed(study, study_name)
    return study


class SweepFailed(SweepError):
    """Every trial of the sweep failed: exit status 1."""

    exit_code = 1


def _signal_status(name):
    """128 + the signal's number (130 for SIGINT), 1 for anything else."""
    import signal

    try:
        return 128 + signal.Signals[name].value
    except KeyError:
        return 1


def _all_failed(study, study_name):
    """Raise :class:`SweepFailed` when the study has trials and every one failed."""
    trials = study.get_trials(deepcopy=False)
    if not trials or any(t.state.name != "FAIL" for t in trials):
        return
    errors = [t.user_attrs.get("error") for t in trials if t.user_attrs.get("error")]
    last = f"; the last: {errors[-1]}" if errors else ""
    raise SweepFailed(f"sweep {study_name}: all {len(trials)} trials failed{last}")


# -- the command --------------------------------------------------------------------


@click.command()
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
@handle_errors
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
