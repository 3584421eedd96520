"""The keywords the training loop claims (everything else goes to the optimizer
or a regularizer, or is rejected)."""

__all__ = ["TRAINER_OPTIONS"]

TRAINER_OPTIONS = (
    "batch_size",
    "shuffle",
    "seed",
    "max_updates",
    "max_epochs",
    "validate_every",
    "patience",
    "min_improvement",
    "restore_best",
    "mode",
)
