"""``trainkit sweep``: hyperparameter sweeps of a config on Optuna (see docs/sweeps.md).

The package's modules, from the command down: ``command`` (the click command
and :func:`run_sweep`), ``status`` (``--status``, ``--best``), ``trials``
(the objective and the workers), ``spec`` (the ``[sweep]`` section),
``space`` (``[sweep.space]``), ``datacheck`` (the corners of the space
against the data) and ``storage`` (where the study lives).
"""

from .command import run_sweep

__all__ = ["run_sweep"]
