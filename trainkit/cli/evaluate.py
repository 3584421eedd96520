"""``trainkit evaluate``, and the models ``predict`` and ``evaluate`` open.

::

    trainkit evaluate runs/a/model.npz test.npz              # loss and metrics
    trainkit evaluate runs/a test.csv --y target --json
    trainkit predict runs/a/checkpoint.npz x.npy -o y.npy    # an interrupted run
    trainkit evaluate runs/seq test.npz --lengths lengths    # sequences of several lengths

A model is a ``model.npz``, a run directory (its ``model.npz``, else its
``checkpoint.npz``) or the ``checkpoint.npz`` of an interrupted run. A
checkpoint holds the training state but not the layers: the run's
``config.toml`` beside it describes the model, and the parameters are the
best validated ones the checkpoint holds (``best/...``), else the current
ones (``state/...``); a note on stderr says which.
"""

import json
import tomllib
from pathlib import Path

import click
import numpy as np

from regularizers.errors import InvalidArgument

from .. import archive
from ..models.metrics import evaluate_arrays
from ..training.checkpoints import FORMAT as CHECKPOINT_FORMAT
from . import arrayfiles, config, files
from .errors import handle_errors

__all__ = ["evaluate", "lengths_note", "open_model", "read_labelled", "read_lengths", "run_mode"]


def _from_checkpoint(path, meta, specs, mode):
    """The network of a trainer checkpoint, built from the run's config.toml."""
    from ..models import io

    config_path = path.parent / "config.toml"
    if not config_path.exists():
        raise ValueError(
            f"{path}: a checkpoint holds parameters but not the layers; the run's config.toml "
            f"should be beside it ({config_path} is missing)"
        )
    cfg = config.load(str(config_path))
    net = cfg.network()
    best = all(f"best/{name}" in specs for name in net.params)
    prefix = "best/" if best else "state/"
    expected = {n: tuple(p.get_value(borrow=True).shape) for n, p in net.params.items()}
    try:
        io.check_shapes(expected, specs, net.dtype, prefix=prefix)
    except ValueError as error:
        raise archive.CheckpointError(str(path), f"{error} (the model of {config_path})") from None
    arrays, _ = archive.load(path)
    params = {name: arrays[prefix + name] for name in net.params}
    io.check_finite(params, str(path), kind="checkpoint")
    net.set_params(params, source=str(path))
    if best:
        step = (meta.get("early_stopping") or {}).get("best_step")
        which = f"the best validated parameters (update {step})"
    else:
        which = f"the parameters at update {meta.get('step')} (none validated yet)"
    click.echo(f"note: {path}: a checkpoint of an interrupted run; using {which}", err=True)
    if mode is not None:
        net.mode = mode
    return net


def open_model(target, mode=None):
    """A network from a model file, a run directory or a run's checkpoint.

    Raises ValueError (one line naming the file) for anything else.
    """
    from ..models import load

    path = Path(target)
    if path.is_dir():
        for name in ("model.npz", "checkpoint.npz"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise ValueError(f"{target}: a directory without model.npz or checkpoint.npz")
    elif not path.exists():
        raise ValueError(f"{target}: no such file")
    meta, specs = archive.read_meta(path)
    if meta.get("format") == CHECKPOINT_FORMAT:
        return _from_checkpoint(path, meta, specs, mode)
    net = load(path)
    if mode is not None:
        net.mode = mode
    return net


def run_mode(model_path):
    """The [model] mode of the run a model file belongs to (its config.toml), if any."""
    path = Path(model_path)
    found = path / "config.toml" if path.is_dir() else path.parent / "config.toml"
    try:
        mode = tomllib.loads(found.read_text(encoding="utf-8"))["model"]["mode"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return mode if isinstance(mode, str) and mode.lower() != "none" else None


def _names(value):
    """A CSV column spelling: ``a`` (one column) or ``a,b`` (several)."""
    if value is None or "," not in value:
        return value
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_takes_lengths(net, model_path, lengths):
    if lengths is not None and net.lengths is None:
        raise InvalidArgument(
            "--lengths",
            f"{model_path} takes no sequence lengths (its input entry has no lengths = true); "
            f"leave --lengths out",
            lengths,
        )


def lengths_note(net, model_path, lengths):
    """A note (or None) for a model that takes lengths when none were named."""
    if lengths is None and net.lengths is not None:
        return (
            f"note: {model_path} takes sequence lengths; none given (--lengths NAME), "
            f"so every step of every sequence is read as real"
        )
    return None


def read_lengths(net, model_path, data_path, lengths, array=None, columns=None):
    """``(x, lengths or None)`` for prediction: the input of a data file and, when
    ``lengths`` names one, its array (.npz) or column (.csv) of sequence lengths."""
    _check_takes_lengths(net, model_path, lengths)
    if lengths is None:
        return arrayfiles.read_input(data_path, array=array, columns=columns), None
    x_name = (array or "x") if Path(data_path).suffix.lower() == ".npz" else columns
    found = arrayfiles.read_file(data_path, {"x": x_name, "lengths": lengths})
    return found["x"], found["lengths"]


def read_labelled(net, data_path, array=None, columns=None, y=None, weights=None, lengths=None):
    """``(x, y or None, weights or None)`` from a data file, shaped for ``net``;
    ``(x, y, weights, lengths)`` when ``lengths`` names the sequence lengths."""
    kind = type(net).__name__
    suffix = Path(data_path).suffix.lower()
    autoencoder = kind == "Autoencoder"
    if autoencoder and y is not None:
        raise InvalidArgument("--y", "an Autoencoder's target is its input; leave --y out", y)
    _check_takes_lengths(net, data_path, lengths)
    if suffix == ".csv":
        names = {"x": _names(columns), "weights": weights}
        if not autoencoder:
            if y is None:
                raise InvalidArgument("--y", f"name the target column(s) of {data_path}")
            names["y"] = _names(y)
    else:
        names = {"x": array or "x", "weights": weights}
        if not autoencoder:
            names["y"] = y or "y"
    if lengths is not None:
        names["lengths"] = lengths
    found = arrayfiles.read_file(data_path, names)
    x = files.fit_input(found["x"], net.n_in, net.structure.in_shape, where=data_path)
    target = found.get("y")
    if kind == "Regressor" and target is not None and target.ndim == 1:
        target = target.reshape(-1, 1)
    if lengths is None:
        return x, target, found.get("weights")
    return x, target, found.get("weights"), found["lengths"]


@click.command()
@click.argument("model_path", metavar="MODEL")
@click.argument("data_path", metavar="DATA")
@click.option("--array", metavar="NAME", help="The input array of an .npz file (default x).")
@click.option(
    "--columns", metavar="A,B,...", help="Input columns of a CSV file (default: the rest)."
)
@click.option(
    "--y",
    "targets",
    metavar="NAME",
    help="Targets: an .npz array (default y) or CSV column(s).",
)
@click.option("--weights", metavar="NAME", help="Sample weights: an .npz array or CSV column.")
@click.option(
    "--lengths",
    metavar="NAME",
    help="Sequence lengths (models whose input entry has lengths = true): an .npz array "
    "or CSV column; padded steps enter no loss or metric.",
)
@click.option("--batch-size", default=1024, show_default=True, help="Examples per call.")
@click.option("--mode", metavar="MODE", help="PyTensor mode (default: the run's [model] mode).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@handle_errors
def evaluate(
    model_path, data_path, array, columns, targets, weights, lengths, batch_size, mode, as_json
):
    """Loss and metrics of a saved model on held-out data, one line per metric.

    MODEL is a model.npz, a run directory or the checkpoint.npz of an
    interrupted run. DATA is .npz (arrays x and y, or --array/--y) or
    .csv with a header row (--y names the target column(s), --columns
    the inputs); --lengths names the sequence lengths of a model that
    takes them. Metrics: loss and acc (Classifier); loss, mse, mae and
    r2 (Regressor, Autoencoder).
    """
    if batch_size < 1:
        raise InvalidArgument(
            "--batch-size", f"must be a positive int, got {batch_size}", batch_size
        )
    if mode is None:
        mode = run_mode(model_path)
    with config.backend(mode):
        net = open_model(model_path, mode)
        _check_takes_lengths(net, model_path, lengths)
        note = lengths_note(net, model_path, lengths)
        if note:
            click.echo(note, err=True)
        x, y, w, *found = read_labelled(net, data_path, array, columns, targets, weights, lengths)
        steps = found[0] if found else None
        try:
            metrics = evaluate_arrays(net, x, y, w, batch_size=batch_size, lengths=steps)
        except ValueError as error:
            raise ValueError(f"{data_path}: {' '.join(str(error).split())}") from None
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        for name, value in metrics.items():
            click.echo(f"{name:<5} {np.format_float_positional(value, 6, fractional=False)}")
