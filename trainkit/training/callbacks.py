"""Hooks that watch the training loop from outside: progress, logs, files, checkpoints.

The :class:`~trainkit.Trainer` calls, on every object in its callback list,
whichever of these methods it has:

- ``on_compile(trainer)`` when the data, options and checkpoint have passed
  their checks and the step is about to be compiled (not when it already is),
- ``on_start(trainer)`` before the first update,
- ``on_update(trainer)`` after each update,
- ``on_validation(trainer, train_metrics, valid_metrics)`` after each
  validation (before the pair is yielded),
- ``on_step_end(trainer)`` after each update and the validation that follows
  it, if any: the state there is one training can continue from, which is
  where :class:`Checkpointer` saves,
- ``on_end(trainer)`` when training ends (``trainer.stop_reason`` says why;
  also when an exception ends it, with the exception in ``stop_reason``).

Built-in hooks run first
(:func:`~trainkit.training.preparation.default_callbacks` picks them from the
options), then the user's ``callbacks`` in the order given.
A user callback is any object with some of them (Keras-style); a callback
ends training with ``trainer.stop(reason)``. The loop itself never prints:
the progress bar writes to stderr (on a terminal, by default) and log lines
are ``logging`` records of the ``trainkit`` logger at level INFO, which a
Python program sees only if it configures logging (the command line does).
"""

import csv
import json
import logging
import math
import os
import sys

from tqdm.auto import tqdm

__all__ = ["ProgressBar", "LogLines", "MetricsFile", "format_metrics"]

#: the logger of log lines
logger = logging.getLogger("trainkit")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def format_metrics(metrics, skip=("step", "epoch", "lr", "seconds")):
    """``'loss 0.123 mse 0.12 acc 0.9'`` from a metrics dict."""
    return " ".join(f"{k} {_fmt(v)}" for k, v in metrics.items() if k not in skip)


class ProgressBar:
    """A tqdm bar over updates, its postfix showing the running loss.

    Parameters
    ----------
    stream : file, optional
        Where the bar goes (default stderr).
    every : int
        Refresh the postfix every this many updates (keeps overhead low).
    """

    def __init__(self, stream=None, every=10):
        self.stream = stream or sys.stderr
        self.every = every
        self.bar = None

    def on_start(self, trainer):
        self.bar = tqdm(
            total=trainer.planned_updates,
            initial=trainer.step,
            unit="upd",
            file=self.stream,
            dynamic_ncols=True,
            leave=False,
        )

    def on_update(self, trainer):
        self.bar.update(1)
        if trainer.step % self.every == 0:
            self.bar.set_postfix(loss=f"{trainer.last_loss:.4g}", refresh=False)

    def on_end(self, trainer):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LogLines:
    """One ``logging`` record per validation: step, epoch, training and validation metrics.

    ``*`` marks a new best validation loss. Records go to the ``trainkit``
    logger at INFO, and one more when training ends.
    """

    def __init__(self, log=None):
        self.log = log or logger

    def on_validation(self, trainer, train_metrics, valid_metrics):
        mark = " *" if trainer.improved else ""
        self.log.info(
            "step %s epoch %s lr %.3g | train %s | valid %s%s",
            train_metrics["step"],
            train_metrics["epoch"],
            train_metrics["lr"],
            format_metrics(train_metrics),
            format_metrics(valid_metrics),
            mark,
        )

    def on_end(self, trainer):
        self.log.info("training ended after %s updates: %s", trainer.step, trainer.stop_reason)


class MetricsFile:
    """Append one row per validation to ``metrics.csv`` or ``metrics.jsonl``.

    Columns are ``step``, ``epoch``, ``lr``, ``seconds``, then each training
    metric prefixed ``train_`` and each validation metric prefixed ``valid_``
    (the keys of the yielded metrics, so a row holds the same values). JSON
    lines write non-finite numbers as Python's ``json`` does (``NaN``,
    ``Infinity``). On resume, rows after the checkpoint's last validation are
    dropped first (such as the extra validation at the end of the run that
    wrote the checkpoint), so the file matches an uninterrupted run; a fresh
    run starts a new file.
    """

    def __init__(self, run_dir, fmt="csv"):
        os.makedirs(run_dir, exist_ok=True)
        self.fmt = fmt
        self.path = os.path.join(os.fspath(run_dir), f"metrics.{fmt}")
        self.columns = None

    @staticmethod
    def row(train_metrics, valid_metrics):
        row = {k: train_metrics[k] for k in ("step", "epoch", "lr", "seconds")}
        for key, value in train_metrics.items():
            if key not in row:
                row[f"train_{key}"] = value
        for key, value in valid_metrics.items():
            row[f"valid_{key}"] = value
        return row

    def on_start(self, trainer):
        self.start(trainer.validated_at or 0)

    # the logger interface (:mod:`trainkit.training.loggers`)
    def start(self, step):
        self._truncate(step)

    def log_metrics(self, step, metrics):
        self._write({"step": step, **metrics})

    def close(self):
        pass

    def _truncate(self, step):
        """Drop rows after ``step`` (a fresh run: step 0 drops everything)."""
        if not os.path.exists(self.path):
            return
        if step == 0:
            self.columns = None
            os.remove(self.path)
            return
        if self.fmt == "jsonl":
            with open(self.path, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            keep = [r for r in rows if r["step"] <= step]
            with open(self.path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in keep)
        else:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.columns = reader.fieldnames
                keep = [r for r in reader if int(r["step"]) <= step]
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(keep)

    def on_validation(self, trainer, train_metrics, valid_metrics):
        self._write(self.row(train_metrics, valid_metrics))

    def _write(self, row):
        if self.fmt == "jsonl":
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            return
        new = not os.path.exists(self.path)
        if self.columns is None:
            self.columns = list(row)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
