"""Training data: array checks (``ArraySpec``) and batching (``Dataset``)."""

from .arrays import ArraySpec, Dataset, check_arrays

__all__ = ["ArraySpec", "Dataset", "check_arrays"]
