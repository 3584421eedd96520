"""Training data: what a model expects (``ArraySpec``), where batches come from
(:mod:`~trainkit.data.sources`) and the resumable position over them (``Dataset``)."""

from .arrays import ArraySpec, check_arrays
from .dataset import Dataset

__all__ = ["ArraySpec", "Dataset", "check_arrays"]
