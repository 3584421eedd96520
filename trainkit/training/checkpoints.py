"""Training checkpoints: the one schema, and the callback that writes them.

A checkpoint is a :mod:`trainkit.archive` file (arrays plus a JSON header,
written atomically, read without unpickling) whose header says
``"format": "trainkit.checkpoint"``. It holds everything needed to continue
training to bitwise-identical parameters:

- arrays ``state/<name>``: every shared variable the step updates
  (parameters, optimizer state) and the learning-rate variable;
  ``best/<param>``: the best validated parameters, for ``restore_best``;
- header: a *signature* (algorithm, every state variable's dtype and shape,
  the generators, the schedule's name) checked before anything is restored;
  the step counters, elapsed time, the data position, the schedule's state,
  each random generator's bit-generator state, the early-stopping state and
  the window of training metrics since the last validation, with their
  names (``columns``: a run with another penalty or monitor is refused).

A checkpoint is always taken where training can continue: after an update
and its validation, never in the middle of an accumulation of gradients or
after the extra validation at the end.

**Data parallel.** Saving is collective: every process sends its random
generators' states to rank 0 (``ranks`` and ``rank_generators`` in the
header), and rank 0 alone writes the file, atomically (a temporary file in
the same folder, then a rename). Resuming, rank 0 reads the file and
broadcasts it, so only rank 0 needs to see it. On the same number of
processes every process takes back its own generators and the run continues
bitwise; on another number (1 included) parameters, optimizer state,
schedule, data position and early stopping carry over exactly, and each
generator is re-derived from ``(seed, name, rank, step)``: the continuation is
deterministic but draws other noise and dropout masks than the original run
would have. Without noise or dropout nothing random is left, so the result
then differs from the original run's only by float rounding.
"""

import contextlib
import os
import time
from collections import OrderedDict

import numpy as np

from .. import archive
from . import ema
from .progress import Progress
from .state import is_rng, rank_generator
from .updates import MetricWindow

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpointer",
    "apply",
    "columns",
    "from_header",
    "read",
    "save",
    "signature",
    "to_header",
]

FORMAT = "trainkit.checkpoint"
VERSION = 1


def to_header(states):
    """The checkpoint header's fields for the parts' states (:meth:`Trainer.state`).

    The header keeps the layout of the files written before the parts owned
    their states (format version 1): the progress counters at its top level,
    ``validated_at`` inside ``early_stopping``, the window as ``window`` and
    ``window_count``. :func:`from_header` is its inverse.
    """
    progress, window = states["progress"], states["window"]
    return {
        "step": progress["step"],
        "skipped": progress["skipped"],
        "elapsed": progress["elapsed"],
        "dataset": states["dataset"],
        "schedule": states.get("schedule"),
        "early_stopping": {**states["early_stopping"], "validated_at": progress["validated_at"]},
        "window": window["sums"],
        "window_count": window["count"],
        "best_metrics": progress["best_metrics"],
    }


def from_header(meta):
    """The parts' states in checkpoint header ``meta`` (:func:`to_header`'s inverse)."""
    stopping = dict(meta["early_stopping"])
    validated_at = stopping.pop("validated_at")
    return {
        "progress": {
            "step": meta["step"],
            "skipped": meta["skipped"],
            "elapsed": meta["elapsed"],
            "validated_at": validated_at,
            "best_metrics": meta.get("best_metrics"),
        },
        "early_stopping": stopping,
        "window": {"sums": meta["window"], "count": meta["window_count"]},
        "dataset": meta["dataset"],
        "schedule": meta["schedule"],
    }


def signature(trainer):
    """What a checkpoint must match: algorithm, state variables, generators, schedule."""
    variables = trainer.state_variables
    return {
        "algo": trainer.algo,
        "variables": {
            name: [
                str(np.asarray(var.get_value(borrow=True)).dtype),
                list(np.shape(var.get_value(borrow=True))),
            ]
            for name, var in variables.items()
            if not is_rng(var)
        },
        "generators": sorted(name for name, var in variables.items() if is_rng(var)),
        "schedule": None if trainer.schedule is None else trainer.schedule.name,
    }


def columns(trainer):
    """The training metrics of ``trainer``'s updates, in the order its window sums them.

    ``loss``, ``base``, each penalty, each extra metric and monitor, and
    ``grad_norm`` with ``monitor_gradients``. A checkpoint records them: a run
    that adds a penalty or a monitor cannot continue another's window.
    """
    a = trainer.assembly
    names = ["loss", "base", *a.penalties, *trainer.metrics, *trainer.monitors]
    return names + (["grad_norm"] if trainer.options.monitor_gradients else [])


def _shown(names):
    return [f"{n} (monitor_gradients)" if n == "grad_norm" else n for n in names]


def _check_columns(trainer, path, meta):
    """Refuse a checkpoint whose training metrics are not this run's (one line)."""
    ours = columns(trainer)
    theirs = meta.get("columns")
    if theirs is None:  # a checkpoint from before columns were recorded: its window's width
        window = meta.get("window")
        if not isinstance(window, list) or len(window) == len(ours):
            return
        raise ValueError(
            f"resume: {path} was made with {len(window)} training metrics, this run has "
            f"{len(ours)} ({', '.join(ours)}); resume with the penalties, metrics, monitors "
            f"and monitor_gradients of the run that made it"
        )
    if list(theirs) == ours:
        return
    added = [n for n in ours if n not in theirs]
    missing = [n for n in theirs if n not in ours]
    what = (
        "; ".join(
            part
            for part in (
                f"this run adds {', '.join(_shown(added))}" if added else "",
                f"this run lacks {', '.join(_shown(missing))}" if missing else "",
            )
            if part
        )
        or f"their order differs ({', '.join(theirs)} there, {', '.join(ours)} here)"
    )
    raise ValueError(
        f"resume: {path} was made with other training metrics: {what}; resume with the "
        f"penalties, metrics, monitors and monitor_gradients of the run that made it"
    )


def _generator_states(trainer):
    return {
        name: var.get_value(borrow=True).bit_generator.state
        for name, var in trainer.state_variables.items()
        if is_rng(var)
    }


def save(trainer, path):
    """Write everything needed to continue ``trainer``'s run to ``path`` (atomically).

    In data-parallel training every process must call it (it gathers the
    random generators); rank 0 writes.
    """
    generators = _generator_states(trainer)
    comm = trainer.communicator if getattr(trainer, "parallel", False) else None
    if comm is not None:
        everyone = comm.gather(generators)
        if not comm.is_root:
            return
    arrays = OrderedDict()
    for name, var in trainer.state_variables.items():
        if not is_rng(var):
            arrays[f"state/{name}"] = np.asarray(var.get_value(borrow=True))
    best_params = trainer.early_stopping.best_params
    if best_params is not None:
        for name, value in best_params.items():
            arrays[f"best/{name}"] = value
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "signature": signature(trainer),
        **to_header(trainer.state()),
        "generators": generators,
        "columns": columns(trainer),
    }
    if comm is not None:
        meta["ranks"] = comm.size
        meta["rank_generators"] = everyone
    archive.save(path, arrays, meta)


def read(trainer, path):
    """Read the checkpoint at ``path`` and check it against ``trainer`` (before compiling).

    In data-parallel training every process must call it: rank 0 reads and
    checks, and every process gets the result (or raises the same error).
    """
    comm = trainer.communicator if getattr(trainer, "parallel", False) else None
    if comm is None:
        return _read(trainer, path)
    outcome = None
    if comm.is_root:
        try:
            outcome = ("ok", _read(trainer, path))
        except Exception as error:  # every process raises it, none waits forever
            outcome = ("error", error)
    kind, value = comm.broadcast(outcome)
    if kind == "error":
        raise value
    return value


@contextlib.contextmanager
def _header_checked(path):
    """Turn what a damaged or crafted header makes reading it raise into one line naming
    the file (an error that already names it passes through)."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as error:
        if isinstance(error, ValueError) and str(error).startswith("resume: "):
            raise
        what = f"{type(error).__name__}: {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(
            f"resume: {os.fspath(path)}: a damaged checkpoint header ({' '.join(what.split())})"
        ) from None


def _read(trainer, path):
    if os.path.isdir(path):
        raise IsADirectoryError(f"resume: {os.fspath(path)}: a directory, not a checkpoint file")
    try:
        arrays, meta = archive.load(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"resume: no checkpoint at {os.fspath(path)}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"resume: {os.fspath(path)}: not a trainkit checkpoint")
    with _header_checked(path):
        return _check_read(trainer, path, arrays, meta)


def _check_read(trainer, path, arrays, meta):
    path = os.fspath(path)
    states = from_header(meta)
    Progress().set_state(states["progress"])  # counts checked before anything is compiled
    MetricWindow().set_state(states["window"])
    ours = signature(trainer)
    theirs = meta.get("signature", {})
    if theirs != ours:
        if theirs.get("algo") != ours["algo"]:
            why = f"it was made with algo={theirs.get('algo')!r}, this run uses {ours['algo']!r}"
        elif theirs.get("schedule") != ours["schedule"]:
            why = (
                f"it was made with lr_schedule {theirs.get('schedule')!r}, this run uses "
                f"{ours['schedule']!r}"
            )
        else:
            diff = []
            for key in ("variables", "generators"):
                a, b = theirs.get(key, {}), ours[key]
                diff += sorted(set(a) ^ set(b))
                if key == "variables":
                    diff += sorted(k for k in set(a) & set(b) if a[k] != b[k])
            shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
            why = f"its state differs in {shown}"
        raise ValueError(f"resume: {path} does not match this model and optimizer; {why}")
    _check_columns(trainer, path, meta)
    return arrays, meta


def apply(trainer, arrays, meta, path):
    """Set every piece of ``trainer``'s state from a checkpoint read by :func:`read`."""
    with _header_checked(path):
        _apply(trainer, arrays, meta, os.fspath(path))


def _apply(trainer, arrays, meta, path):
    states = from_header(meta)
    try:
        trainer.dataset.set_state(states["dataset"])
    except ValueError as error:
        raise ValueError(
            f"resume: {path} was saved training on other data or with other batching: {error}"
        ) from None
    comm = trainer.communicator if getattr(trainer, "parallel", False) else None
    size, rank = (1, 0) if comm is None else (comm.size, comm.rank)
    saved_ranks = meta.get("ranks", 1)
    if saved_ranks == size:
        generators = meta["rank_generators"][rank] if size > 1 else meta["generators"]
    else:
        generators = None  # another number of processes: re-derived (see the module's notes)
    step = states["progress"]["step"]
    for name, var in trainer.state_variables.items():
        if is_rng(var) and generators is None:
            var.set_value(_rederived(trainer, var, step, rank), borrow=True)
        elif is_rng(var):
            rng = np.random.default_rng()
            rng.bit_generator.state = generators[name]
            var.set_value(rng, borrow=True)
        else:
            var.set_value(np.array(arrays[f"state/{name}"], copy=True))
    best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}
    names = [*trainer.graph.params, *(n for n in ema.running_state(trainer) if n in best)]
    best = OrderedDict((n, best[n]) for n in names) if best else None
    del states["dataset"]  # set above, with its own message
    trainer.set_state(states, best_params=best)


def _rederived(trainer, var, step, rank):
    """A generator for ``var`` after resuming on another number of processes."""
    return rank_generator(trainer, var, rank=rank, step=step)


class Checkpointer:
    """Save the trainer's full state to ``path`` every N updates or T seconds.

    Each checkpoint replaces the last atomically. It saves after an update
    and its validation (``on_step_end``), never between them. The trainer
    also saves one when training ends or is stopped, before the extra
    validation of the final state and before it restores the best
    parameters, so a checkpoint always holds the state training would
    continue from.

    Parameters
    ----------
    path : str or path
        The checkpoint file.
    every : tuple or None
        ``('updates', n)`` or ``('seconds', t)`` (see
        :func:`trainkit.training.options.parse_every`); None saves only at the end.
    """

    def __init__(self, path, every=None):
        self.path = path
        self.every = every
        self.last_time = time.monotonic()
        self.saved_step = None
        self.final_saved = False

    def on_start(self, trainer):
        self.last_time = time.monotonic()  # the clock starts after compiling
        self.saved_step = None
        self.final_saved = False

    def on_step_end(self, trainer):
        if self.every is None:
            return
        kind, amount = self.every
        if kind == "updates":
            due = trainer.step % amount == 0
        else:
            due = time.monotonic() - self.last_time >= amount
        comm = trainer.communicator if getattr(trainer, "parallel", False) else None
        if comm is not None and kind == "seconds":
            due = comm.any(due)  # every process saves, or none (saving is collective)
        if due:
            self.save(trainer)

    def state(self):
        """Where the last checkpoint was taken (not saved in checkpoints: a resumed run
        starts with none written)."""
        return {"saved_step": self.saved_step, "final_saved": self.final_saved}

    def set_state(self, state):
        self.saved_step = state["saved_step"]
        self.final_saved = state["final_saved"]

    def save_final(self, trainer):
        """Save the state training ends with, unless the last checkpoint already holds it
        (once a run)."""
        if not self.final_saved:
            if self.saved_step != trainer.step:
                self.save(trainer)
            self.final_saved = True

    def save(self, trainer):
        trainer.save_checkpoint(self.path)
        self.last_time = time.monotonic()
        self.saved_step = trainer.step
