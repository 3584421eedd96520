"""What the command line needs to run under ``mpiexec -n N trainkit train run.toml``.

Every process runs the same command; rank 0 alone picks the run directory,
prints, and writes config.toml, metrics.csv, checkpoint.npz, model.npz and
curves.png (the trainer already keeps progress bars, log lines and the
metrics file to rank 0, and only rank 0 writes checkpoints). Every process
trains.

- :func:`communicator_from_environment`: an MPI communicator when this
  process was started by ``mpiexec``/``mpirun``/``srun`` with more than one
  process (the launcher's environment variables say so; mpi4py is imported
  only then), else None: a plain run.
- :func:`is_writer`: whether this process prints and writes files.
- :func:`agreed`: a value rank 0 computes (the run directory) given to all.
- :func:`abort_on_error`: an error on one process ends the whole job, instead
  of leaving the others waiting in a collective forever.
"""

import contextlib
import os
import sys

__all__ = [
    "LAUNCHER_VARIABLES",
    "abort_on_error",
    "agreed",
    "communicator_from_environment",
    "is_writer",
    "launched_size",
]

#: environment variables in which launchers give the number of processes
#: (Open MPI, PMIx, MPICH/Hydra's PMI, Slurm's srun)
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS")


def launched_size(environ=None):
    """The number of processes the launcher started (1 when none did).

    >>> launched_size({"OMPI_COMM_WORLD_SIZE": "4"}), launched_size({})
    (4, 1)
    """
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_VARIABLES[:3]:
        if environ.get(name, "").isdigit():
            return int(environ[name])
    # srun sets SLURM_NTASKS in every job step; it means processes only with a PMI
    if environ.get("SLURM_NTASKS", "").isdigit() and "SLURM_PROCID" in environ:
        return int(environ["SLURM_NTASKS"])
    return 1


def communicator_from_environment(environ=None):
    """An MPI communicator under a launcher with more than one process, else None."""
    if launched_size(environ) <= 1:
        return None
    from ..distributed import MPI

    comm = MPI()
    return comm if comm.size > 1 else None


def is_writer(comm):
    """Whether this process prints and writes the run's files (rank 0, or a plain run)."""
    return comm is None or comm.is_root


def agreed(comm, compute):
    """``compute()`` on rank 0, its result (or its error) on every process."""
    if comm is None:
        return compute()
    outcome = None
    if comm.is_root:
        try:
            outcome = ("ok", compute())
        except Exception as error:
            outcome = ("error", error)
    kind, value = comm.broadcast(outcome)
    if kind == "error":
        raise value
    return value


@contextlib.contextmanager
def abort_on_error(comm, expected=()):
    """Run the block; an exception on one process of several aborts the MPI job.

    The exception is printed first (on stderr, with its rank). ``SystemExit``
    (click's exit codes) and the ``expected`` exception types, which every
    process raises alike (e.g. ``ArgumentError`` from checking the same data
    and options), pass through as they are.
    """
    try:
        yield
    except (SystemExit, KeyboardInterrupt, *expected):
        raise
    except BaseException as error:
        if comm is None or comm.size == 1:
            raise
        print(f"rank {comm.rank}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        comm.abort(1)
        raise
