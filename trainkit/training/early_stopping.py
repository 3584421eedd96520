"""Early stopping and the best parameters: what each validation loss decides.

A validation *improves* when its loss is finite and below the reference
(the last improving loss) by more than ``min_improvement`` relative to it, as
downhill did. Training stops once ``patience`` validations in a row have not
improved (Keras' ``EarlyStopping`` counting: ``patience=3`` stops at the third
validation without improvement; ``patience=0`` at the first). Separately, the
parameters of the lowest validation loss seen (the first such, on ties) are
kept for ``restore_best``.

>>> stop = EarlyStopping(patience=2)
>>> [stop.observe(loss, step, dict) or stop.reason for step, loss in enumerate([3, 2, 2.5, 2.1])]
[None, None, None, 'no improvement in 2 validations (patience=2)']
>>> stop.best_loss, stop.best_step
(2, 1)
"""

import math
from collections import OrderedDict

import numpy as np

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Patience counting and best-parameter tracking.

    Parameters
    ----------
    patience : int or None
        Validations without improvement that end training (None: never).
    min_improvement : float
        Relative decrease of the validation loss that counts as improving.
    """

    def __init__(self, patience=None, min_improvement=0.0):
        self.patience = patience
        self.min_improvement = min_improvement
        self.reset()

    def reset(self):
        self.best_loss = math.inf
        self.best_step = None
        self.best_params = None
        self.reference_loss = math.inf
        self.bad_validations = 0
        self.improved = False
        self.reason = None

    def observe(self, loss, step, params):
        """Record validation ``loss`` at ``step``; ``params()`` gives the parameters to keep.

        Sets :attr:`improved` (a new best loss) and, when patience runs out,
        :attr:`reason`.
        """
        self.improved = bool(np.isfinite(loss) and loss < self.best_loss)
        if self.improved:
            self.best_loss = loss
            self.best_step = step
            self.best_params = OrderedDict(params())
        reference = self.reference_loss
        if np.isfinite(loss) and (
            not np.isfinite(reference) or loss < reference - self.min_improvement * abs(reference)
        ):
            self.reference_loss = loss
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            if self.patience is not None and self.bad_validations >= self.patience:
                self.reason = (
                    f"no improvement in {self.bad_validations} validations "
                    f"(patience={self.patience})"
                )

    def restore(self, params, step):
        """Put the best parameters back into the shared variables ``params`` unless they
        are those of ``step``; return the step restored, or None.

        The best validation loss is never above the last one, so the result is
        never worse than the last validated state.
        """
        if self.best_params is None or self.best_step == step:
            return None
        for name, p in params.items():
            p.set_value(np.array(self.best_params[name], copy=True))
        return self.best_step

    def state(self):
        """JSON-ready state (the best parameters travel separately, as arrays)."""
        return {
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "reference_loss": self.reference_loss if math.isfinite(self.reference_loss) else None,
            "best_step": self.best_step,
            "bad_validations": self.bad_validations,
        }

    def set_state(self, state, best_params=None):
        self.best_loss = math.inf if state["best_loss"] is None else state["best_loss"]
        ref = state["reference_loss"]
        self.reference_loss = math.inf if ref is None else ref
        self.best_step = state["best_step"]
        self.bad_validations = state["bad_validations"]
        self.best_params = best_params
