"""Training: keyword parsing, assembly of the step, the loop and what hooks into it."""

from .assembly import Assembly, assemble
from .trainer import Trainer

__all__ = ["Assembly", "Trainer", "assemble"]
