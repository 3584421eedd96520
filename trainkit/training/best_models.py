"""The best k validated models of a run, as files (the ``keep_best`` option).

With ``keep_best = k`` and a ``run_dir``, every validation whose loss is
finite and among the k lowest so far writes the validated parameters (the
averaged ones with ``ema``) to ``run_dir/best-<step>.npz``, and the file
that falls out of the k best is removed: Lightning's
``ModelCheckpoint(save_top_k=k, monitor='val_loss')``. Ties keep the earlier
step, as early stopping does. Each file is written atomically (a temporary
file, then a rename) before the displaced one is removed, so a crash leaves
complete files only, at worst one too many (trimmed when the run resumes).

Trained through ``net.train`` (or ``trainkit train``), a file is a model file
like ``model.npz`` (``trainkit.load``, ``trainkit evaluate``, ``trainkit
predict`` take it), with the validation in its header (``"validation":
{"step": ..., "loss": ...}``); a bare :class:`~trainkit.Trainer` writes the
parameters as a :mod:`trainkit.archive` file.

A fresh run removes the run directory's old ``best-*.npz``; a resumed run
keeps those of steps up to the checkpoint's last validation and removes the
rest (made after the checkpoint), so the files match an uninterrupted run.
In data-parallel runs rank 0 writes them.

>>> sorted(ranked([(0.5, 10), (0.3, 20), (0.5, 5), (0.9, 1)], 3))
[(0.3, 20), (0.5, 5), (0.5, 10)]
"""

import math
import os
import re

import numpy as np

from .. import archive
from . import ema

__all__ = ["BestModels", "PATTERN", "ranked"]

#: the name of a best model's file
PATTERN = re.compile(r"best-(\d+)\.npz")


def ranked(entries, k):
    """The ``k`` best of ``(loss, step)`` pairs: lowest loss, then earliest step."""
    return sorted(entries)[:k]


class BestModels:
    """The callback that keeps ``run_dir/best-<step>.npz`` for the ``k`` best validations.

    Parameters
    ----------
    run_dir : str or path
    k : int
    """

    def __init__(self, run_dir, k):
        self.run_dir = os.fspath(run_dir)
        self.k = k
        #: the files kept, as (validation loss, step)
        self.kept = []

    def path(self, step):
        return os.path.join(self.run_dir, f"best-{step}.npz")

    def _files(self):
        if not os.path.isdir(self.run_dir):
            return {}
        found = (PATTERN.fullmatch(name) for name in os.listdir(self.run_dir))
        return {int(m.group(1)): os.path.join(self.run_dir, m.group(0)) for m in found if m}

    def on_start(self, trainer):
        start = trainer.validated_at or 0
        self.kept = []
        for step, path in self._files().items():
            loss = None
            if step <= start:
                try:
                    loss = archive.load(path)[1].get("validation", {}).get("loss")
                except (OSError, ValueError):
                    loss = None
            if loss is None:
                os.remove(path)  # a fresh run's, after the checkpoint, or unreadable
            else:
                self.kept.append((loss, step))
        self._trim()

    def on_validation(self, trainer, train_metrics, valid_metrics):
        loss = valid_metrics["loss"]
        if not math.isfinite(loss):
            return
        entry = (loss, trainer.step)
        if entry not in ranked([*self.kept, entry], self.k):
            return
        arrays = {name: np.asarray(value) for name, value in ema.evaluated_params(trainer)}
        validation = {"step": trainer.step, "loss": loss}
        save = getattr(trainer, "save_model", None)
        if save is not None:
            save(self.path(trainer.step), arrays, validation=validation)
        else:
            archive.save(
                self.path(trainer.step),
                arrays,
                {"format": "trainkit.parameters", "validation": validation},
            )
        self.kept.append(entry)
        self._trim()

    def _trim(self):
        keep = ranked(self.kept, self.k)
        for loss, step in self.kept:
            if (loss, step) not in keep and os.path.exists(self.path(step)):
                os.remove(self.path(step))
        self.kept = keep
