"""``trainkit train``: train the model a config describes, into a run directory.

::

    trainkit train --example digits            # the built-in first run
    trainkit train run.toml --set training.weight_l2=1e-4 --run-dir runs/a
    trainkit train --resume --run-dir runs/a   # continue from runs/a/checkpoint.npz

A directory holding a run is refused without ``--resume`` or
``--overwrite``, and a run locks its directory (``.trainkit.lock``: pid,
host, start time) while it trains. Under ``mpiexec -n N`` every process
trains and rank 0 alone looks at files and writes.
"""

import contextlib
import signal
import time
from pathlib import Path

import click

from . import config, configcheck, run, rundir
from .configinput import load_config
from .distributed import agreed, communicator_from_environment
from .errors import UserError, handle_errors

__all__ = ["train"]


def _new_run_dir(run_dir, name):
    """The run directory: ``run_dir`` if given, else ``runs/NAME[-N]`` (a new folder)."""
    if run_dir is not None:
        return Path(run_dir)
    base = Path("runs") / name
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _check_new_run_dir(run_dir, overwrite):
    """Refuse a directory that holds a run, unless ``--overwrite`` (then empty it)."""
    held = rundir.held_files(run_dir)
    if held and not overwrite:
        raise UserError(
            f"--run-dir {run_dir}: already holds a run ({', '.join(held)}); continue it "
            f"with --resume, replace it with --overwrite, or choose another directory"
        )
    if held:
        rundir.clear(run_dir)
        click.echo(f"--overwrite: removed {', '.join(held)} from {run_dir}", err=True)


@contextlib.contextmanager
def _run_lock(comm, run_dir):
    """Rank 0 holds ``run_dir``'s lock while the block runs; every rank fails alike."""
    lock = rundir.RunLock(run_dir, note=lambda line: click.echo(line, err=True))
    agreed(comm, lambda: lock.acquire() and None)  # rank 0 holds it; nothing to send
    try:
        yield lock
    finally:
        lock.release()


def _compare_for_resume(saved, cfg):
    """Only ``configcheck.RESUMABLE`` training keys may differ when resuming."""
    old, new = saved.as_dict(), cfg.as_dict()
    for section in ("model", "data", "training"):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "training" and key in configcheck.RESUMABLE:
                continue
            if a.get(key, "(not set)") != b.get(key, "(not set)"):
                raise UserError(
                    f"--resume: {section}.{key} is {b.get(key, '(not set)')!r} here but "
                    f"{a.get(key, '(not set)')!r} in the run's config.toml; when resuming only "
                    f"{', '.join(f'training.{k}' for k in configcheck.RESUMABLE)} may change"
                )


# -- train --------------------------------------------------------------------------


@click.command()
@click.argument("config_path", metavar="[CONFIG]", required=False)
@click.option("--example", metavar="NAME", help="Use a shipped example config (e.g. digits).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set training.weight_l2=1e-4 (TOML values; "
    "bare strings allowed). Repeatable.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    help="Run directory (default: runs/NAME, runs/NAME-2, ... for a new run).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --run-dir from its checkpoint.npz (CONFIG defaults to its "
    "config.toml).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the run --run-dir holds (without it, a directory holding a run is refused).",
)
@click.option(
    "--logger",
    "loggers",
    multiple=True,
    metavar="NAME",
    help="Also log to NAME (tensorboard, mlflow, jsonl), added to [training] loggers. Repeatable.",
)
@handle_errors
def train(config_path, example, overrides, run_dir, resume, overwrite, loggers):
    """Train the model a TOML config describes and write a run directory.

    CONFIG has [model], [data] and [training] sections. [data] names the
    file and its arrays (or CSV columns) by role: x, y, lengths (sequence
    lengths, for a model whose input entry says lengths = true) and weights.
    [training] takes `algo` (default rmsprop) and every keyword net.train
    takes (hyperparameters, regularizers, trainer options), with the same
    names; `trainkit list` shows them all. The run directory gets the
    resolved config.toml, metrics.csv, checkpoint.npz, model.npz and
    curves.png; the held-out accuracy (classifiers) or R² is printed at the
    end. checkpoint.npz is saved every minute (unless [training] save_every
    says otherwise) and on Ctrl-C, SIGTERM and SIGHUP: continue with
    --resume. A directory that holds a run is refused without --resume or
    --overwrite; one run at a time may use a directory (it is locked).
    """
    began = time.monotonic()
    # under `mpiexec -n N` every process trains; rank 0 alone looks at files and writes
    comm = communicator_from_environment()
    if resume and overwrite:
        raise UserError("--resume and --overwrite: give one (continue the run, or replace it)")
    if resume:
        if run_dir is None:
            raise UserError("--resume: name the run to continue with --run-dir DIR")

        def check_resumable():
            for needed in (Path(run_dir) / "config.toml", Path(run_dir) / "checkpoint.npz"):
                if not needed.exists():
                    raise UserError(
                        f"--resume: {needed}: missing; {run_dir} is not a resumable run"
                    )

        agreed(comm, check_resumable)
        saved_path = Path(run_dir) / "config.toml"
        saved = config.load(saved_path)
        if config_path is None and example is None:
            cfg = config.load(saved_path, overrides=overrides)
        else:
            cfg = load_config(config_path, example, overrides)
        run.add_loggers(cfg, loggers)
        _compare_for_resume(saved, cfg)
        run_dir = Path(run_dir)
    else:
        cfg = load_config(config_path, example, overrides)
        name = example or Path(config_path).stem
        run_dir = agreed(comm, lambda: _new_run_dir(run_dir, name))
    run.add_loggers(cfg, loggers)
    net = run.prepare(cfg)  # a bad config is refused before the run directory is touched
    with _run_lock(comm, run_dir):
        if not resume:
            agreed(comm, lambda: _check_new_run_dir(run_dir, overwrite))
        result = run.run_config(
            cfg, run_dir, resume=resume, began=began, net=net, communicator=comm
        )
    if result.interrupted:
        raise click.exceptions.Exit(128 + signal.Signals[result.interrupted].value)
