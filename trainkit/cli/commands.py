"""The ``trainkit`` command: train, list, describe, explain, predict, plot.

::

    trainkit train --example digits            # the built-in first run
    trainkit train run.toml --set training.weight_l2=1e-4 --run-dir runs/a
    trainkit train --resume --run-dir runs/a   # continue from runs/a/checkpoint.npz
    trainkit list                              # optimizers, regularizers, options
    trainkit describe runs/a/model.npz         # layers, parameter and output names
    trainkit explain run.toml                  # what each regularizer touches (no training)
    trainkit predict runs/a/model.npz x.npy -o labels.csv
    trainkit plot runs/a                       # redraw runs/a/curves.png
    trainkit lr-find run.toml                  # a learning-rate range test, lr_find.png

A bad config or bad data is one line on stderr (file, key, value, what is
allowed, the closest valid key) and exit status 2; ``--debug`` shows the
traceback instead. Training interrupted by Ctrl-C, SIGTERM or SIGHUP saves a
checkpoint and exits with 128 + the signal number (130, 143, 129); a run
saves one every minute too (``save_every = "60s"`` unless set), so
``--resume`` always has one. A directory holding a run is refused without
``--resume`` or ``--overwrite``, and a run locks its directory
(``.trainkit.lock``: pid, host, start time) while it trains.
"""

import contextlib
import functools
import logging
import signal
import sys
import time
import tomllib
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..training.threads import limit_threads
from . import config, evaluate, files, lrfind, plotting, run, rundir
from .distributed import agreed, communicator_from_environment

__all__ = ["cli", "main"]

#: what a run directory holds
RUN_FILES = run.RUN_FILES


class UserError(click.ClickException):
    """A problem with the user's input: one line on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class TrainingFailed(UserError):
    """Training itself failed (a non-finite loss under nan_policy='raise'): exit status 1."""

    exit_code = 1


def _one_line(error):
    """The message of a library exception, as one line."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror[0].lower()}{error.strerror[1:]}"
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def _handle_errors(function):
    """Add ``--debug`` and turn user errors into :class:`UserError` (exit status 2)."""

    @click.option("--debug", is_flag=True, help="Show the traceback of an error.")
    @functools.wraps(function)
    def wrapper(*args, debug=False, **kwargs):
        context = click.get_current_context()
        debug = debug or bool(context.find_root().params.get("debug"))
        try:
            return function(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (ValueError, TypeError, OSError) as error:  # ConfigError, DataError too
            if debug:
                raise
            raise UserError(_one_line(error)) from error
        except FloatingPointError as error:
            if debug:
                raise
            raise TrainingFailed(_one_line(error)) from error

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    metavar="N",
    help="BLAS/OpenMP/Numba threads for the whole command (1 is the steady choice on a small "
    "shared machine); JAX's pool follows the cores the process may use (taskset -c 0).",
)
@click.version_option(__version__, prog_name="trainkit")
def cli(debug, threads):
    """Train, inspect and use trainkit models from the shell.

    Start with the built-in first run, a recurrent classifier on the UCI
    handwritten digits (offline, about 6 seconds on 2 cores):

        trainkit train --example digits

    `trainkit list` shows every optimizer, regularizer, trainer option and
    shipped example; `trainkit COMMAND --help` shows a command's options.
    """
    context = click.get_current_context()
    context.call_on_close(_show_library_logs())
    context.with_resource(limit_threads(threads))


class _LogToStderr(logging.Handler):
    """Log records of the library as plain lines on stderr, around a progress bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging's own contract: never raise from emit)
            self.handleError(record)


def _show_library_logs():
    """Print the library's log lines (the library never does); returns the undo."""
    log = logging.getLogger("trainkit")
    handler = _LogToStderr()
    before = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    def undo():
        log.removeHandler(handler)
        log.setLevel(before[0])
        log.propagate = before[1]

    return undo


def main(argv=None):
    """Entry point of the ``trainkit`` console script."""
    return cli.main(args=argv, prog_name="trainkit")


# -- helpers ------------------------------------------------------------------------


def _load_config(path, example, overrides):
    if path is not None and example is not None:
        raise UserError(f"give a config file or --example {example}, not both")
    if path is None and example is None:
        raise UserError("give a config file, or --example NAME (trainkit list examples)")
    cfg = config.load(path, example, overrides)
    for note in cfg.notes:
        click.echo(note, err=True)
    return cfg


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
    """Only ``config.RESUMABLE`` training keys may differ when resuming."""
    old, new = saved.as_dict(), cfg.as_dict()
    for section in ("model", "data", "training"):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "training" and key in config.RESUMABLE:
                continue
            if a.get(key, "(not set)") != b.get(key, "(not set)"):
                raise UserError(
                    f"--resume: {section}.{key} is {b.get(key, '(not set)')!r} here but "
                    f"{a.get(key, '(not set)')!r} in the run's config.toml; when resuming only "
                    f"{', '.join(f'training.{k}' for k in config.RESUMABLE)} may change"
                )


# -- train --------------------------------------------------------------------------


@cli.command()
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
@_handle_errors
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
            cfg = _load_config(config_path, example, overrides)
        run.add_loggers(cfg, loggers)
        _compare_for_resume(saved, cfg)
        run_dir = Path(run_dir)
    else:
        cfg = _load_config(config_path, example, overrides)
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


# -- predict, plot -------------------------------------------------------------------


def _run_mode(model_path):
    """The [model] mode of the run a model file belongs to (its config.toml), if any."""
    path = Path(model_path)
    found = path / "config.toml" if path.is_dir() else path.parent / "config.toml"
    try:
        mode = tomllib.loads(found.read_text(encoding="utf-8"))["model"]["mode"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return mode if isinstance(mode, str) and mode.lower() != "none" else None


@cli.command()
@click.argument("model_path", metavar="MODEL")
@click.argument("data_path", metavar="DATA")
@click.option("-o", "--output", required=True, help="Where to write: .npy or .csv.")
@click.option("--array", metavar="NAME", help="The input array of an .npz file.")
@click.option("--columns", metavar="A,B,...", help="Input columns of a CSV file (default: all).")
@click.option("--proba", is_flag=True, help="Class probabilities instead of labels (Classifier).")
@click.option("--batch-size", default=1024, show_default=True, help="Examples per call.")
@click.option(
    "--mode",
    metavar="MODE",
    help="PyTensor mode (JAX, NUMBA, FAST_COMPILE, ...); default: the [model] mode of the "
    "run's config.toml, else trainkit's default (JAX).",
)
@_handle_errors
def predict(model_path, data_path, output, array, columns, proba, batch_size, mode):
    """Predict with a saved model: labels (Classifier), or outputs.

    MODEL is a model.npz, a run directory or the checkpoint.npz of an
    interrupted run (its config.toml gives the layers). DATA is .npy (memory-mapped),
    .npz (--array NAME) or .csv with a header row (--columns); a recurrent
    model reads 2-D rows as time steps of its input size. OUT is .npy or
    .csv.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size: must be a positive int, got {batch_size}")
    if mode is None:
        mode = _run_mode(model_path)
    with config.backend(mode):
        net = evaluate.open_model(model_path, mode)
        classifier = type(net).__name__ == "Classifier"
        if proba and not classifier:
            raise UserError(f"--proba: {model_path} is a {type(net).__name__}, not a Classifier")
        names = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
        x = files.read_input(data_path, array=array, columns=names)
        x = files.fit_input(x, net.n_in, net.structure.in_shape, where=data_path)
        function = net.predict_proba if proba else net.predict
        try:
            chunks = [
                function(np.asarray(x[start : start + batch_size], dtype=net.dtype))
                for start in range(0, len(x), batch_size)
            ]
        except ValueError as error:  # the data do not fit the model
            raise UserError(f"{data_path}: {_one_line(error)}") from error
    result = np.concatenate(chunks) if chunks else np.zeros((0,))
    width = result.shape[-1] if result.ndim > 1 else 1
    if classifier and not proba:
        header = ["label"]
    elif proba:
        header = [f"p{k}" for k in range(width)]
    else:
        header = ["y"] if width == 1 else [f"y{k}" for k in range(width)]
    files.write_output(output, result, header)
    click.echo(f"wrote {len(result)} predictions {tuple(result.shape)} to {output}")


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR")
@click.option("-o", "--output", help="PNG to write (default: RUN_DIR/curves.png).")
@_handle_errors
def plot(run_dir, output):
    """Draw the training and validation curves of a run (curves.png)."""
    _, path = plotting.plot_run(run_dir, output)
    click.echo(f"wrote {path}")


cli.add_command(evaluate.make_command(_handle_errors))
cli.add_command(lrfind.make_command(_handle_errors, _load_config))

if __name__ == "__main__":
    main()
