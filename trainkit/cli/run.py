"""Run one config into one run directory: what ``trainkit train`` and every sweep trial do.

A run directory holds the resolved ``config.toml``, ``metrics.csv``,
``checkpoint.npz``, ``model.npz`` and ``curves.png``; ``trainkit train
--resume --run-dir DIR``, ``plot``, ``describe`` and ``predict`` work on any
of them, a sweep trial's included.

:func:`prepare` builds the model and checks ``[training]`` against it
(nothing compiles); :func:`run_config` loads the data, trains and writes the
directory, and returns a :class:`RunResult`. Neither exits the process: the
``train`` command turns an interrupted run into exit status 130/143, a sweep
worker into a stopped sweep.
"""

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from regularizers.errors import ArgumentError

from .. import __version__
from ..backend import resolve
from ..training.loggers import check_loggers, log_artifacts, with_metrics_file
from ..training.signals import stop_on_signals
from . import config, configcheck, files, plotting, toml
from .distributed import abort_on_error, is_writer
from .errors import ConfigError, DataError, one_line

__all__ = [
    "RUN_FILES",
    "RunResult",
    "TrainingDiverged",
    "add_loggers",
    "data_error",
    "prepare",
    "run_config",
]

#: what a run directory holds
RUN_FILES = ("config.toml", "metrics.csv", "metrics.jsonl", "checkpoint.npz", "model.npz")


class TrainingDiverged(FloatingPointError):
    """A run that diverged: the command line exits 1 and writes no model."""


@dataclass
class RunResult:
    """What one run did.

    Attributes
    ----------
    run_dir : Path
    net : trainkit.models.Network
        The trained model (best validated parameters when ``restore_best``).
    trainer : trainkit.Trainer
    stop_reason : str
        Why training ended (``"pruned at step 40: ..."`` when a callback stopped it).
    interrupted : str or None
        ``'SIGINT'`` or ``'SIGTERM'`` when a signal ended the run (then no model.npz).
    score : float or None
        Held-out accuracy (Classifier) or R² of the final model.
    files : list of str
        What the run directory holds.
    finished_before : bool
        ``resume`` found the run already finished: nothing was trained.
    """

    run_dir: Path
    net: object
    trainer: object
    stop_reason: str
    interrupted: str | None = None
    score: float | None = None
    files: list = field(default_factory=list)
    finished_before: bool = False


#: how often the command line saves checkpoint.npz when [training] save_every is not set
DEFAULT_SAVE_EVERY = "60s"


def _quiet_echo(*args, **kwargs):
    pass


class _Clock:
    """A trainer callback noting when the first update is done (compiling included)."""

    first = None
    start_step = None

    def __init__(self, echo=_quiet_echo, line=""):
        self.echo, self.line = echo, line

    def on_compile(self, trainer):
        self.echo(self.line)  # after the data and option checks, which need no compiling

    def on_start(self, trainer):
        self.start_step = trainer.step

    def on_update(self, trainer):
        if self.first is None:
            self.first = time.monotonic()


def _roles(net, arrays):
    """``(x, y, lengths, weights)`` of data in :func:`files.load`'s order (None: absent)."""
    x, *rest = arrays
    y = None if type(net).__name__ == "Autoencoder" else rest.pop(0)
    lengths = rest.pop(0) if net.lengths is not None and rest else None
    return x, y, lengths, (rest[0] if rest else None)


def _score_line(net, valid, held_out):
    """``'held-out accuracy 0.9722 (360 examples)'`` for the final model.

    The score honours the data's sequence lengths and sample weights, as
    ``net.score(x, y, weights=..., lengths=...)`` does.
    """
    x, y, lengths, weights = _roles(net, valid)
    targets = [] if y is None else [y]
    score = net.score(x, *targets, weights=weights, lengths=lengths)
    what = "accuracy" if type(net).__name__ == "Classifier" else "R²"
    where = "held-out" if held_out else "training-data"
    return f"{where} {what} {score:.4f} ({len(valid[0])} examples)", score


def _sizes(net):
    layers = [f"{net.input_name}({net.n_in})"]
    layers += [f"{layer.name} {layer.form}({layer.size})" for layer in net.layers]
    return " -> ".join(layers)


def _quiet(*args, **kwargs):
    pass


def add_loggers(cfg, names):
    """Add ``--logger`` names to ``cfg``'s ``[training] loggers`` (after those it has)."""
    if not names:
        return
    names = check_loggers("--logger", list(dict.fromkeys(names)))  # one line naming the flag
    have = cfg.training.get("loggers", [cfg.training.get("metrics_format", "csv")])
    have = list(have) if isinstance(have, (list, tuple)) else [have]
    cfg.training["loggers"] = have + [n for n in dict.fromkeys(names) if n not in have]


def prepare(cfg):
    """Build ``cfg``'s model and check ``[training]`` against it; nothing compiles.

    Returns the network. Raises :class:`~trainkit.cli.errors.ConfigError`
    (one line naming the file and key) for a bad config.
    """
    if not cfg.data:
        raise ConfigError(
            f'{cfg.source}: [data]: missing; training needs train = "file" or builtin'
        )
    with config.backend(cfg.mode):
        net = cfg.network()
        cfg.check_training(net.graph())
    return net


def run_config(
    cfg,
    run_dir,
    resume=False,
    callbacks=(),
    echo=click.echo,
    began=None,
    net=None,
    log=True,
    communicator=None,
):
    """Train ``cfg`` into ``run_dir``; return a :class:`RunResult`.

    Parameters
    ----------
    cfg : trainkit.cli.config.Config
    run_dir : str or Path
        Created if missing; its ``config.toml`` is (re)written.
    resume : bool
        Continue from ``run_dir/checkpoint.npz``.
    callbacks : sequence
        Extra trainer callbacks (after the run's own). One may end training
        early with ``trainer.stop(reason)``; the run then ends like
        one that reached its limit (final checkpoint, model.npz, score).
    echo : callable or None
        Where the run's report lines go (None: nowhere).
    began : float, optional
        ``time.monotonic()`` when the command started (default: now).
    net : Network, optional
        The model :func:`prepare` built (built here if not given).
    log : bool
        Default of ``[training] log`` and ``progress`` (the per-validation
        lines and the progress bar); a config's own setting wins.
    communicator : Communicator, optional
        Data-parallel training (``mpiexec -n N trainkit train``): every
        process trains, rank 0 alone prints and writes.

    Raises
    ------
    ConfigError, DataError-derived ConfigError
        A bad config or bad data (one line).
    FloatingPointError
        A non-finite loss under ``nan_policy = "raise"``.
    """
    began = time.monotonic() if began is None else began
    echo = echo or _quiet
    run_dir = Path(run_dir)
    if net is None:
        net = prepare(cfg)
    with config.backend(cfg.mode):
        with tempfile.TemporaryDirectory(prefix="trainkit-split-") as scratch:
            try:
                data = files.load(cfg.data, cfg.kind, scratch)
                for arrays in (data.train, data.valid):
                    if arrays is not None:
                        arrays[0] = files.fit_input(arrays[0], net.n_in, net.structure.in_shape)
            except DataError as error:
                raise data_error(cfg, error) from error
            return _train(
                cfg, net, data, run_dir, resume, began, callbacks, echo, log, communicator
            )


def data_error(cfg, error):
    """A DataError from a ``[data]`` section, naming the config key it concerns."""
    if error.key is None:
        return ConfigError(str(error))
    return ConfigError(f"{cfg.where('data', error.key)}: {error}")


def _write_config(cfg, run_dir):
    (run_dir / "config.toml").write_text(
        toml.dumps(
            cfg.as_dict(),
            comments=[
                f"The resolved configuration of this run (trainkit {__version__}), from",
                f"{cfg.source}; continue it with: trainkit train --resume --run-dir {run_dir}",
            ],
        ),
        encoding="utf-8",
    )


def _train(cfg, net, data, run_dir, resume, began, callbacks, echo, log, communicator=None):
    writer = is_writer(communicator)
    os.makedirs(run_dir, exist_ok=True)  # every rank: the checkpoint's folder must exist
    if writer:
        _write_config(cfg, run_dir)
    else:
        echo = _quiet
    clock = _Clock(echo, f"compiling with mode {resolve(cfg.mode)} ...")
    checkpoint = run_dir / "checkpoint.npz"
    kwargs = cfg.training_kwargs()
    kwargs.setdefault("progress", "auto" if log else False)
    kwargs.setdefault("log", log)
    # a run from the command line always leaves a checkpoint to resume from (Lightning's
    # last.ckpt): periodically, and on Ctrl-C, SIGTERM and SIGHUP (stop_on_signals)
    kwargs.setdefault("save_every", DEFAULT_SAVE_EVERY)
    # the run directory keeps its metrics file whatever else logs (plot, describe read it)
    kwargs["loggers"] = with_metrics_file(
        kwargs.get("loggers"), kwargs.get("metrics_format", "csv")
    )
    kwargs.update(
        run_dir=os.fspath(run_dir),
        save_progress=os.fspath(checkpoint),
        callbacks=[clock, *callbacks],
    )
    if resume:
        kwargs["resume"] = os.fspath(checkpoint)
    if communicator is not None:
        kwargs["data_parallel"] = communicator
    echo(f"{cfg.kind} {_sizes(net)}")
    echo(f"data: {data.description}")
    echo(f"run directory: {run_dir}{' (resuming)' if resume else ''}")
    try:
        with abort_on_error(communicator, expected=(ArgumentError,)):
            pairs = net.itertrain(data.train, data.valid, algo=cfg.algo, **kwargs)
            with stop_on_signals(net.trainer):  # the command line owns the process's signals
                for _ in pairs:
                    pass
    except ArgumentError as error:
        # which section the argument belongs to decides how the message names it
        if error.argument.split()[0] in ("train", "valid"):
            raise cfg.rephrase("data", error) from error
        raise cfg.rephrase("training", error) from error
    trainer = net.trainer
    finished = time.monotonic()
    if not writer:  # rank 0 reports, plots and saves; the others end as it does
        if trainer.diverged:
            raise TrainingDiverged(f"training diverged: {trainer.stop_reason}")
        return RunResult(run_dir, net, trainer, trainer.stop_reason or "", trainer.interrupted)

    try:
        plotting.plot_run(run_dir)
        curves = True
    except (ValueError, OSError) as error:
        echo(f"curves.png not drawn: {one_line(error)}", err=True)
        curves = False

    reason = trainer.stop_reason or ""
    first = (clock.first or finished) - began
    timing = f"time {finished - began:.1f} s ({first:.1f} s to the first update: checks, compiling)"
    result = RunResult(run_dir, net, trainer, reason, trainer.interrupted)
    if trainer.interrupted:
        echo(
            f"{reason} after {trainer.step} updates; checkpoint saved; {timing}\n"
            f"continue with: trainkit train --resume --run-dir {run_dir}"
        )
        result.files = [f for f in RUN_FILES if (run_dir / f).exists()]
        return result
    if resume and clock.start_step == trainer.step and (run_dir / "model.npz").exists():
        echo(
            f"{run_dir}: the run is finished ({reason} at update {trainer.step}); nothing "
            f"was trained and model.npz is as it was; to train further raise a limit, e.g. "
            f"--set training.max_updates=N (resumable: "
            f"{', '.join(f'training.{k}' for k in configcheck.RESUMABLE)})"
        )
        result.finished_before = True
        result.files = [f for f in RUN_FILES if (run_dir / f).exists()]
        return result

    evaluate = data.valid if data.valid is not None else data.train
    x, _, lengths, _ = _roles(net, evaluate)
    predictions_finite = bool(np.all(np.isfinite(net.predict(x, lengths))))
    if trainer.diverged or not predictions_finite:
        why = reason if trainer.diverged else "the model's predictions are not finite"
        result.files = [f for f in RUN_FILES if (run_dir / f).exists()]
        raise TrainingDiverged(
            f"training diverged after {trainer.step} updates: {why}; no model.npz written "
            f"(the checkpoint of the last state is in {run_dir}; a smaller learning_rate or "
            f"max_gradient_norm usually helps)"
        )
    net.save(run_dir / "model.npz")
    log_artifacts(trainer, [run_dir / "model.npz", *([run_dir / "curves.png"] if curves else [])])
    line, result.score = _score_line(net, evaluate, data.valid is not None)
    restored = (
        f"; parameters of step {trainer.restored_step} (best validation loss)"
        if trainer.restored_step is not None
        else ""
    )
    echo(f"stopped after {trainer.step} updates: {reason}{restored}")
    echo(line)
    echo(timing)
    result.files = [f for f in RUN_FILES if (run_dir / f).exists()] + (
        ["curves.png"] if curves else []
    )
    # what keep_best and the loggers added
    best = sorted(
        run_dir.glob("best-*.npz"), key=lambda p: int(p.stem[5:]) if p.stem[5:].isdigit() else 0
    )
    result.files += [p.name for p in best]
    result.files += [f"{d}{os.sep}" for d in ("tensorboard", "mlruns") if (run_dir / d).is_dir()]
    echo(f"wrote {run_dir}{os.sep}: {', '.join(result.files)}")
    return result
