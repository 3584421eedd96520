"""The shared variables a run changes: found by name, seeded, left as numpy.

:func:`state_variables` names every shared variable training updates
(parameters, optimizer state, random generators) and the learning rate;
checkpoints save and restore exactly these. :func:`seed_generators` seeds
every random generator from the trainer's ``seed`` and the generator's name
(one number reproduces a run; in data-parallel runs the rank too,
:func:`rank_generator`), and :func:`as_numpy` leaves every variable
holding numpy values after training, whatever the backend.
"""

import zlib
from collections import OrderedDict

import numpy as np
from pytensor.tensor.random.type import RandomGeneratorType

__all__ = ["as_numpy", "is_rng", "rank_generator", "seed_generators", "state_variables"]


def is_rng(var):
    """Whether shared variable ``var`` holds a random generator."""
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


def state_variables(trainer):
    """Every shared variable training changes, by name (params, optimizer, rngs, lr)."""
    variables = OrderedDict()
    for var in trainer.assembly.updates:
        if not var.name:
            raise ValueError(f"Trainer: an updated shared variable has no name: {var}")
        if var.name in variables:
            raise ValueError(f"Trainer: two updated shared variables are named {var.name!r}")
        variables[var.name] = var
    if trainer.lr is not None and trainer.lr.name not in variables:
        variables[trainer.lr.name or "trainer/learning_rate"] = trainer.lr
    return variables


def seed_generators(trainer):
    """Seed every random generator from ``seed`` (and the generator's name).

    Noise and dropout regularizers given a ``seed`` of their own keep it;
    the rest (other regularizers', the optimizer's, like ``esgd/rng``)
    follow the trainer's ``seed``, so one number reproduces a run.
    """
    own = {r.rng_name for r in trainer.spec.regularizers if getattr(r, "seed", None) is not None}
    for var in trainer.assembly.updates:
        if is_rng(var) and var.name not in own:
            key = zlib.crc32(var.name.encode())
            var.set_value(np.random.default_rng([trainer.options.seed, key]), borrow=True)
    if trainer.parallel:  # every process draws its own noise and dropout masks
        for var in trainer.assembly.updates:
            if is_rng(var):
                var.set_value(rank_generator(trainer, var), borrow=True)


def as_numpy(trainer):
    """Leave every state variable holding numpy values of its own dtype: writable arrays
    (JAX returns its own, and int32 for int64 without 64-bit mode), and the generators
    where the compiled functions left them."""
    if trainer.compiled is not None:
        trainer.compiled.sync_generators()
    for var in trainer.state_variables.values():
        value = var.get_value(borrow=True)
        dtype = getattr(var.type, "dtype", None)
        if not is_rng(var) and (not isinstance(value, np.ndarray) or value.dtype != dtype):
            # JAX without 64-bit mode hands back int32 for an int64 counter (adam/t)
            var.set_value(np.array(value, dtype=dtype, copy=True), borrow=True)
