r"""Where the processes of a data-parallel run meet, outside the update itself.

Every process runs the same loop on the same data (``docs/distributed.md``);
the :class:`~trainkit.distributed.Communicator` is the seam, and these are
the pieces of the loop that need both it and the trainer. With ``size``
processes:

- **at the start**, rank 0's parameters, optimizer state and learning rate
  are broadcast (:func:`broadcast_state`), and every random generator is
  seeded from ``(seed, generator name, rank)``
  (:func:`trainkit.training.state.rank_generator`), so each process draws its
  own noise and dropout masks; processes other than rank 0 show nothing and
  write no logs (:func:`quiet_options`);
- **each update** (:func:`trainkit.training.updates.update`): each process
  draws the global batch, keeps its rows, adds :math:`w_r g_r` to its
  accumulators, then one all-reduce of one flat buffer sums the
  accumulators, the weights :math:`w_r`, the weighted training metrics and
  the flags: whether a shard was non-finite, and whether a stop was asked
  for (by a callback or a signal, on any process;
  :meth:`~trainkit.training.progress.Progress.agree_on_stop`). The update is
  :math:`\sum_r w_r g_r / \sum_r w_r`, the gradient of the global batch's
  mean loss; clipping, the optimizer and ``max_norm`` run after the reduce
  on the same bits on every process;
- **each validation** (:func:`reduce_validation`): each process evaluates its
  shard of every validation batch; one all-reduce sums the weighted metric
  sums and the weight, so early stopping, ``restore_best`` and plateau
  schedules see the same loss everywhere.
"""

from types import SimpleNamespace

import numpy as np

from .state import is_rng

__all__ = ["broadcast_state", "quiet_options", "reduce_validation"]


def broadcast_state(trainer):
    """Give every process rank 0's parameters, optimizer state and learning rate."""
    comm = trainer.communicator
    variables = [(n, v) for n, v in trainer.state_variables.items() if not is_rng(v)]
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


def reduce_validation(trainer, sums, total):
    """All processes' weighted validation sums and total weight (one all-reduce)."""
    n = len(trainer.valid_names)
    sums = np.zeros(n) if sums is None else np.asarray(sums, np.float64)
    reduced = trainer.communicator.allreduce_sum(np.concatenate([sums, [total]]))
    return reduced[:n], float(reduced[n])
