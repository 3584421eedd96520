r"""How the :class:`~trainkit.Trainer` runs on more than one process.

Every process runs the same loop on the same data; these functions are the
places where the processes meet. With ``size`` processes:

- **at the start**, rank 0's parameters, optimizer state and learning rate
  are broadcast (:func:`broadcast_state`), and every random generator is
  seeded from ``(seed, generator name, rank)`` (:func:`rank_generator`), so
  each process draws its own noise and dropout masks;
- **each update** (:func:`update`): each process draws the global batch,
  keeps its rows (:func:`~trainkit.distributed.sharding.shard_rows`), adds
  :math:`w_r g_r` to its accumulators, then one all-reduce of one flat buffer
  sums the accumulators, the weights :math:`w_r`, the weighted training
  metrics and the flags: whether a shard was non-finite, and whether a stop
  was asked for (by a callback or a signal, on any process). The update is
  :math:`\sum_r w_r g_r / \sum_r w_r`, the gradient of the global batch's mean
  loss; clipping, the optimizer and ``max_norm`` run after the reduce on the
  same bits on every process;
- **each validation** (:func:`reduce_validation`): each process evaluates its
  shard of every validation batch; one all-reduce sums the weighted metric
  sums and the weight, so early stopping, ``restore_best`` and plateau
  schedules see the same loss everywhere.

With ``accumulate = N > 1`` the non-finite flag of each batch is agreed as
the batch is computed (one small all-reduce per batch), and a process whose
own shard was finite takes that batch's gradients back out (a copy of the
accumulators from before it), so a batch that is non-finite anywhere adds
nothing anywhere, as with one process.
"""

import zlib
from types import SimpleNamespace

import numpy as np
from pytensor.tensor.random.type import RandomGeneratorType

from .sharding import shard_rows

__all__ = ["broadcast_state", "quiet_options", "rank_generator", "reduce_validation", "update"]

#: the flags that travel with every update's all-reduce, after the metric sums
FLAGS = ("non_finite", "stop", "SIGINT", "SIGTERM", "other_signal")


def _is_rng(var):
    return isinstance(var.type, RandomGeneratorType)


def rank_generator(trainer, var, rank=None, step=None):
    """A generator for ``var`` on process ``rank`` (default: this one's), seeded by
    ``(seed, name, rank)``.

    ``seed`` is the regularizer's own seed when it has one, else the
    trainer's; ``step``, when given, is mixed in too (generators re-derived on
    resuming with another number of processes).
    """
    own = {
        r.rng_name: r.seed
        for r in trainer.spec.regularizers
        if getattr(r, "seed", None) is not None
    }
    seed = own.get(var.name, trainer.options.seed)
    if rank is None:
        rank = trainer.communicator.rank
    words = [seed, zlib.crc32(var.name.encode()), rank]
    if step is not None:
        words.append(step)
    return np.random.default_rng(words)


def broadcast_state(trainer):
    """Give every process rank 0's parameters, optimizer state and learning rate."""
    comm = trainer.communicator
    variables = [(n, v) for n, v in trainer.state_variables.items() if not _is_rng(v)]
    values = [np.asarray(v.get_value(borrow=True)) for _, v in variables] if comm.is_root else None
    values = comm.broadcast(values)
    if not comm.is_root:
        for (_, var), value in zip(variables, values, strict=True):
            var.set_value(np.array(value, copy=True), borrow=True)


def quiet_options(options):
    """The options of a process other than rank 0: no progress bar, logs or loggers.

    The checkpointer stays (saving is collective: rank 0 writes what every
    process's random state adds up to).
    """
    return SimpleNamespace(
        **{**vars(options), "progress": False, "log": False, "run_dir": None, "loggers": []}
    )


def _signal_flags(trainer):
    name = trainer.interrupted
    return [
        float(name == "SIGINT"),
        float(name == "SIGTERM"),
        float(name is not None and name not in ("SIGINT", "SIGTERM")),
    ]


def _agree_on_stop(trainer, stop, signals):
    """Turn the reduced stop requests into the same ``stop_reason`` on every process."""
    if stop <= 0 or trainer.stop_reason is not None:
        return
    names = [n for n, count in zip(FLAGS[2:], signals, strict=True) if count > 0]
    if names:
        mine = trainer.interrupted
        trainer.progress.agreed_interruption = mine or (
            names[0] if names[0] != "other_signal" else "signal"
        )
        if trainer.interrupted is None:
            trainer.interrupted = trainer.progress.agreed_interruption
    reason = trainer.progress.stop_request or "stop requested on another process"
    if trainer.progress.stop_request is None and names:
        reason = f"interrupted by {trainer.progress.agreed_interruption} on another process"
    trainer.progress.end(reason)


def update(trainer):
    """One data-parallel update: shards in, one all-reduce, the same update everywhere.

    The caller counts the step.
    """
    step, comm, o = trainer._step, trainer.communicator, trainer.options
    dataset = trainer.dataset
    n_values = len(step.batch_names)
    sums = np.zeros(n_values)  # this process's sum of w * batch values
    count, local_bad = 0, False
    epoch0 = dataset.epoch
    for _ in range(o.accumulate):
        epoch, index = dataset.epoch, dataset.batch_index
        shard = shard_rows(dataset.next_batch(), comm.rank, comm.size)
        saved = step.snapshot() if o.accumulate > 1 else None
        finite, values, weight = True, None, 0.0
        try:
            if len(shard[0]):
                finite, values = step.gradients(shard)
                weight = step.last_weight
        except BaseException:
            step.clear()
            raise
        if o.accumulate > 1:
            bad = comm.any(not finite)  # agreed batch by batch
            if bad:
                if finite:
                    step.restore(saved)
                try:
                    trainer.non_finite(epoch, index)
                except FloatingPointError:
                    step.clear()
                    raise
            else:
                count += 1
                if values is not None:
                    sums += weight * values
        else:
            local_bad = not finite  # agreed by the update's all-reduce
            if finite and values is not None:
                sums += weight * values
        if dataset.epoch > epoch0 or dataset.exhausted or trainer.stop_reason:
            break  # an update never spans an epoch boundary
    flags = [
        float(local_bad),
        float(trainer.progress.stop_request is not None),
        *_signal_flags(trainer),
    ]
    reduced = step.reduce(np.concatenate([sums, flags]))
    sums, (bad, stop, *signals) = reduced[:n_values], reduced[n_values:]
    _agree_on_stop(trainer, stop, signals)
    total = step.weight  # every process's, after the reduce
    if o.accumulate == 1:
        if bad > 0:
            step.clear()
            trainer.non_finite(epoch, index)
        else:
            count = 1
    if count:  # as with one process, a zero total weight makes apply report non-finite
        finite, extras = step.apply()
        if finite:
            trainer.record(np.concatenate([sums / total, extras]))
        else:
            trainer.non_finite(epoch, index)
    else:
        step.clear()


def reduce_validation(trainer, sums, total):
    """All processes' weighted validation sums and total weight (one all-reduce)."""
    n = len(trainer.valid_names)
    sums = np.zeros(n) if sums is None else np.asarray(sums, np.float64)
    reduced = trainer.communicator.allreduce_sum(np.concatenate([sums, [total]]))
    return reduced[:n], float(reduced[n])
