"""The ``trainkit`` command group, ``predict`` and ``plot``, and where every command is added.

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

import logging
import sys

import click
import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..training.threads import limit_threads
from . import arrayfiles, config, files, plotting
from .errors import UserError, handle_errors, one_line
from .evaluate import evaluate, lengths_note, open_model, read_lengths, run_mode
from .lrfind import lr_find
from .reports import describe, explain, list_
from .sweep.command import sweep
from .train import train

__all__ = ["cli", "main"]


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


# -- predict, plot -------------------------------------------------------------------


@click.command()
@click.argument("model_path", metavar="MODEL")
@click.argument("data_path", metavar="DATA")
@click.option("-o", "--output", required=True, help="Where to write: .npy or .csv.")
@click.option("--array", metavar="NAME", help="The input array of an .npz file.")
@click.option("--columns", metavar="A,B,...", help="Input columns of a CSV file (default: all).")
@click.option("--proba", is_flag=True, help="Class probabilities instead of labels (Classifier).")
@click.option(
    "--lengths",
    metavar="NAME",
    help="Sequence lengths (models whose input entry has lengths = true): an array of the "
    ".npz or a column of the CSV.",
)
@click.option("--batch-size", default=1024, show_default=True, help="Examples per call.")
@click.option(
    "--mode",
    metavar="MODE",
    help="PyTensor mode (JAX, NUMBA, FAST_COMPILE, ...); default: the [model] mode of the "
    "run's config.toml, else trainkit's default (JAX).",
)
@handle_errors
def predict(model_path, data_path, output, array, columns, proba, lengths, batch_size, mode):
    """Predict with a saved model: labels (Classifier), or outputs.

    MODEL is a model.npz, a run directory or the checkpoint.npz of an
    interrupted run (its config.toml gives the layers). DATA is .npy (memory-mapped),
    .npz (--array NAME) or .csv with a header row (--columns); a recurrent
    model reads 2-D rows as time steps of its input size; --lengths names
    the sequence lengths of a model that takes them. OUT is .npy or .csv.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size: must be a positive int, got {batch_size}")
    if mode is None:
        mode = run_mode(model_path)
    with config.backend(mode):
        net = open_model(model_path, mode)
        classifier = type(net).__name__ == "Classifier"
        if proba and not classifier:
            raise UserError(f"--proba: {model_path} is a {type(net).__name__}, not a Classifier")
        names = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
        note = lengths_note(net, model_path, lengths)
        if note:
            click.echo(note, err=True)
        x, steps = read_lengths(net, model_path, data_path, lengths, array, names)
        x = files.fit_input(x, net.n_in, net.structure.in_shape, where=data_path)
        function = net.predict_proba if proba else net.predict
        try:
            chunks = [
                function(
                    np.asarray(x[start : start + batch_size], dtype=net.dtype),
                    None if steps is None else steps[start : start + batch_size],
                )
                for start in range(0, len(x), batch_size)
            ]
        except ValueError as error:  # the data do not fit the model
            raise UserError(f"{data_path}: {one_line(error)}") from error
    result = np.concatenate(chunks) if chunks else np.zeros((0,))
    width = result.shape[-1] if result.ndim > 1 else 1
    if classifier and not proba:
        header = ["label"]
    elif proba:
        header = [f"p{k}" for k in range(width)]
    else:
        header = ["y"] if width == 1 else [f"y{k}" for k in range(width)]
    arrayfiles.write_output(output, result, header)
    click.echo(f"wrote {len(result)} predictions {tuple(result.shape)} to {output}")


@click.command()
@click.argument("run_dir", metavar="RUN_DIR")
@click.option("-o", "--output", help="PNG to write (default: RUN_DIR/curves.png).")
@handle_errors
def plot(run_dir, output):
    """Draw the training and validation curves of a run (curves.png)."""
    _, path = plotting.plot_run(run_dir, output)
    click.echo(f"wrote {path}")


# -- every command, added in this one place ----------------------------------------

for _command in (train, evaluate, predict, plot, lr_find, list_, describe, explain, sweep):
    cli.add_command(_command)

if __name__ == "__main__":
    main()
