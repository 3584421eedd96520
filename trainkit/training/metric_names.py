"""The names of the metrics a run reports, checked once, before compiling.

``train_metrics`` starts with the keys the loop sets itself
(:data:`RESERVED_METRICS`); then come ``loss``, the base loss under the
trainer's ``loss_name``, the weighted penalties, the extra metrics, the
monitors and, with ``monitor_gradients``, ``grad_norm``. :func:`check` makes
sure no two of them share a name; :func:`reported` renames the compiled
functions' ``base`` value to ``loss_name``.

>>> reported(["loss", "base", "weight_l2"], "mse")
['loss', 'mse', 'weight_l2']
"""

__all__ = ["RESERVED_METRICS", "check", "reported"]

#: keys of ``train_metrics`` that the loop itself sets
RESERVED_METRICS = ("step", "epoch", "lr", "seconds", "skipped")


def check(trainer):
    """Raise ValueError when two of ``trainer``'s metrics would have the same name."""
    names = [
        "loss",
        trainer.loss_name,
        *trainer.assembly.penalties,
        *trainer.metrics,
        *trainer.monitors,
    ]
    if trainer.options.monitor_gradients:
        names.append("grad_norm")
    seen = set(RESERVED_METRICS)
    for name in names:
        if name in seen:
            raise ValueError(
                f"metrics: two metrics would be named {name!r} (reserved: "
                f"{', '.join(RESERVED_METRICS)}, loss, the loss name {trainer.loss_name!r}, "
                f"penalties, metrics and monitors must all differ)"
            )
        seen.add(name)


def reported(names, loss_name):
    """``names`` of a compiled function's values as reported: ``base`` is ``loss_name``."""
    return [loss_name if n == "base" else n for n in names]
