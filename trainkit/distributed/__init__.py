"""Data-parallel training: the communicator seam and how batches are split over ranks.

See ``docs/distributed.md``. Nothing here imports an MPI library until an
:class:`MPI` communicator is made (``data_parallel='mpi'``).
"""

from .communicator import MPI, Communicator, Identity, from_name
from .sharding import shard_rows, shard_slice

__all__ = ["MPI", "Communicator", "Identity", "from_name", "shard_rows", "shard_slice"]
