"""Hooks that watch the training loop from outside: progress, logs, files, checkpoints.

The :class:`~trainkit.Trainer` calls, on every object in its callback list,
whichever of these methods it has:

- ``on_start(trainer)`` before the first update,
- ``on_update(trainer)`` after each update,
- ``on_validation(trainer, train_metrics, valid_metrics)`` after each
  validation (before the pair is yielded),
- ``on_step_end(trainer)`` after each update and the validation that follows
  it, if any: the state there is one training can continue from, which is
  where :class:`Checkpointer` saves,
- ``on_end(trainer)`` when training ends (``trainer.stop_reason`` says why;
  also when an exception ends it, with the exception in ``stop_reason``).

Built-in hooks run first, then the user's ``callbacks`` in the order given.
A user callback is any object with some of them (Keras-style). The loop
itself never prints; these do.
"""

import csv
import json
import math
import os
import sys
import time

from tqdm.auto import tqdm

__all__ = ["ProgressBar", "LogLines", "MetricsFile", "Checkpointer", "format_metrics"]


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

    def write(self, line):
        """Print a line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)


class LogLines:
    """One line per validation: step, epoch, training and validation metrics.

    ``*`` marks a new best validation loss.
    """

    def __init__(self, stream=None, bar=None):
        self.stream = stream or sys.stderr
        self.bar = bar

    def _write(self, line):
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def on_validation(self, trainer, train_metrics, valid_metrics):
        mark = " *" if trainer.improved else ""
        self._write(
            f"step {train_metrics['step']} epoch {train_metrics['epoch']} "
            f"lr {train_metrics['lr']:.3g} | train {format_metrics(train_metrics)} | "
            f"valid {format_metrics(valid_metrics)}{mark}"
        )

    def on_end(self, trainer):
        self._write(f"training ended after {trainer.step} updates: {trainer.stop_reason}")


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
        self._truncate(trainer.validated_at or 0)

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
        row = self.row(train_metrics, valid_metrics)
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


class Checkpointer:
    """Save the trainer's full state to ``path`` every N updates or T seconds.

    Each checkpoint replaces the last atomically (see
    :mod:`trainkit.checkpoints`). It saves after an update and its
    validation (``on_step_end``), never between them. The trainer also saves
    one when training ends or is interrupted, before the extra validation of
    the final state and before it restores the best parameters, so a
    checkpoint always holds the state training would continue from.

    Parameters
    ----------
    path : str or path
        The checkpoint file.
    every : tuple or None
        ``('updates', n)`` or ``('seconds', t)`` (see
        :func:`trainkit.options.parse_every`); None saves only at the end.
    """

    def __init__(self, path, every=None):
        self.path = path
        self.every = every
        self.last_time = time.monotonic()
        self.saved_step = None

    def on_start(self, trainer):
        self.last_time = time.monotonic()  # the clock starts after compiling
        self.saved_step = None

    def on_step_end(self, trainer):
        if self.every is None:
            return
        kind, amount = self.every
        if kind == "updates":
            due = trainer.step % amount == 0
        else:
            due = time.monotonic() - self.last_time >= amount
        if due:
            self.save(trainer)

    def save(self, trainer):
        trainer.save_checkpoint(self.path)
        self.last_time = time.monotonic()
        self.saved_step = trainer.step
