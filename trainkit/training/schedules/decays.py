r"""The decaying learning-rate schedules: ``step``, ``exponential``, ``cosine``, ``plateau``.

Each is a :class:`~trainkit.training.schedules.Schedule` registered by name;
:func:`trainkit.training.schedules.build` makes them from a user's
specification, and warmup composes with each (see
:mod:`trainkit.training.schedules`).
"""

import math
import numbers
from collections.abc import Mapping

from .base import Schedule, check_count, check_real, register

__all__ = ["Cosine", "Exponential", "Plateau", "Step"]


@register("step")
class Step(Schedule):
    """Decay by ``gamma`` every ``step_size`` updates.

    ``rate(s) = lr * gamma ** floor(s / step_size)``; PyTorch's ``StepLR``
    (counted in updates, not epochs).

    Parameters
    ----------
    learning_rate : float
        ``lr``.
    step_size : int
        Updates between decays, >= 1.
    gamma : float
        Factor in (0, 1].

    >>> s = Step(1.0, step_size=3, gamma=0.5)
    >>> [s.value(i) for i in range(7)]
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    """

    def __init__(self, learning_rate, step_size, gamma=0.1, *, warmup=0):
        super().__init__(learning_rate, warmup=warmup)
        self.step_size = check_count("step: ", "step_size", step_size, 1)
        self.gamma = check_real("step: ", "gamma", gamma, low=0, high=1, low_open=True)

    def rate(self, step):
        return self.learning_rate * self.gamma ** (step // self.step_size)


@register("exponential")
class Exponential(Schedule):
    """Smooth exponential decay.

    ``rate(s) = lr * gamma ** (s / decay_steps)``; Keras'
    ``ExponentialDecay(lr, decay_steps, decay_rate=gamma, staircase=False)``
    (PyTorch's ``ExponentialLR`` is the case ``decay_steps=1``).

    Parameters
    ----------
    learning_rate : float
        ``lr``.
    decay_steps : int or float
        Updates over which the rate is multiplied by ``gamma``, > 0.
    gamma : float
        Factor in (0, 1]; the default divides the rate by ten every
        ``decay_steps`` updates.

    >>> s = Exponential(1.0, decay_steps=2, gamma=0.25)
    >>> [s.value(i) for i in range(5)]
    [1.0, 0.5, 0.25, 0.125, 0.0625]
    """

    def __init__(self, learning_rate, decay_steps, gamma=0.1, *, warmup=0):
        super().__init__(learning_rate, warmup=warmup)
        where = "exponential: "
        decay = check_real(where, "decay_steps", decay_steps, low=0, low_open=True)
        self.decay_steps = int(decay_steps) if isinstance(decay_steps, numbers.Integral) else decay
        self.gamma = check_real(where, "gamma", gamma, low=0, high=1, low_open=True)

    def rate(self, step):
        return self.learning_rate * self.gamma ** (step / self.decay_steps)


@register("cosine")
class Cosine(Schedule):
    """Cosine annealing from ``lr`` to ``min_lr``, once.

    With ``W`` warmup updates and ``T = total_steps - W`` updates of decay::

        rate(s) = min_lr + (lr - min_lr) * (1 + cos(pi * min(s, T) / T)) / 2

    so update ``W`` uses ``lr``, update ``total_steps`` and later ones use
    ``min_lr``. Without warmup this is PyTorch's ``CosineAnnealingLR(T_max=
    total_steps, eta_min=min_lr)`` held at ``min_lr`` after ``T_max`` (no
    restarts) and Keras' ``CosineDecay(lr, decay_steps=total_steps,
    alpha=min_lr/lr)``. With warmup, ``total_steps`` counts the warmup too, as
    HuggingFace's ``get_cosine_schedule_with_warmup`` does (Keras'
    ``decay_steps`` would be ``total_steps - W``), so the trainer's
    ``max_updates`` can be passed as it is.

    Parameters
    ----------
    learning_rate : float
        ``lr``.
    total_steps : int
        Updates until the rate reaches ``min_lr``, warmup included; > ``W``.
    min_lr : float
        Final rate, in [0, lr].

    >>> s = Cosine(1.0, total_steps=4)
    >>> [round(s.value(i), 6) for i in range(6)]
    [1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0]
    """

    def __init__(self, learning_rate, total_steps, min_lr=0.0, *, warmup=0):
        super().__init__(learning_rate, warmup=warmup)
        where = "cosine: "
        self.total_steps = check_count(where, "total_steps", total_steps, 1)
        self.min_lr = check_real(where, "min_lr", min_lr, low=0, high=self.learning_rate)
        if self.total_steps <= self.warmup:
            raise ValueError(
                f"cosine: total_steps must exceed warmup ({self.warmup}); got {total_steps!r} "
                "(total_steps counts every update, warmup included)"
            )

    def rate(self, step):
        span = self.total_steps - self.warmup
        cosine = 1 + math.cos(math.pi * min(step, span) / span)
        return self.min_lr + (self.learning_rate - self.min_lr) * cosine / 2


@register("plateau")
class Plateau(Schedule):
    """Reduce the rate when the validation loss stops improving.

    PyTorch's ``ReduceLROnPlateau(mode='min', threshold_mode='rel')``, counted
    in validations (calls to :meth:`observe`); Keras' ``ReduceLROnPlateau``
    differs in its threshold (absolute ``min_delta``). After each validation
    loss ``x``:

    1. if ``x < best * (1 - threshold)``: ``best = x``, ``bad = 0``; else
       ``bad += 1``;
    2. if ``cooldown_left > 0``: ``cooldown_left -= 1``, ``bad = 0``;
    3. if ``bad > patience``: ``new = max(lr * factor, min_lr)``; the rate
       becomes ``new`` if ``lr - new > eps``; ``cooldown_left = cooldown``,
       ``bad = 0``.

    ``best`` starts at +inf; a NaN loss counts as no improvement. ``rate(s)``
    is the current rate whatever ``s``; during warmup it is scaled as for any
    schedule.

    Parameters
    ----------
    learning_rate : float
        The starting rate.
    factor : float
        Multiplier on each reduction, in (0, 1).
    patience : int
        Validations without improvement tolerated before a reduction, >= 0.
    threshold : float
        Relative improvement needed to count as better, >= 0.
    cooldown : int
        Validations after a reduction during which bad ones are not counted.
    min_lr : float
        Floor of the rate, >= 0.
    eps : float
        Reductions smaller than this are skipped (as PyTorch's ``eps``).

    >>> s = Plateau(1.0, factor=0.5, patience=1)
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
    ...     s.observe(loss)
    >>> s.value(0), s.state()
    (0.25, {'best': 2.0, 'bad_validations': 0, 'cooldown_left': 0, 'current_lr': 0.25})
    """

    def __init__(
        self,
        learning_rate,
        factor=0.1,
        patience=10,
        threshold=1e-4,
        cooldown=0,
        min_lr=0.0,
        eps=1e-8,
        *,
        warmup=0,
    ):
        super().__init__(learning_rate, warmup=warmup)
        where = "plateau: "
        self.factor = check_real(
            where, "factor", factor, low=0, high=1, low_open=True, high_open=True
        )
        self.patience = check_count(where, "patience", patience, 0)
        self.threshold = check_real(where, "threshold", threshold, low=0)
        self.cooldown = check_count(where, "cooldown", cooldown, 0)
        self.min_lr = check_real(where, "min_lr", min_lr, low=0)
        self.eps = check_real(where, "eps", eps, low=0)
        self.best = math.inf
        self.bad_validations = 0
        self.cooldown_left = 0
        self.current_lr = self.learning_rate

    def rate(self, step):
        return self.current_lr

    def observe(self, metric):
        metric = float(metric)
        if metric < self.best * (1 - self.threshold):
            self.best = metric
            self.bad_validations = 0
        else:
            self.bad_validations += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_validations = 0
        if self.bad_validations > self.patience:
            new = max(self.current_lr * self.factor, self.min_lr)
            if self.current_lr - new > self.eps:
                self.current_lr = new
            self.cooldown_left = self.cooldown
            self.bad_validations = 0

    def state(self):
        best = None if self.best == math.inf else self.best
        return {
            "best": best,
            "bad_validations": self.bad_validations,
            "cooldown_left": self.cooldown_left,
            "current_lr": self.current_lr,
        }

    def set_state(self, state):
        expected = {"best", "bad_validations", "cooldown_left", "current_lr"}
        if not isinstance(state, Mapping) or set(state) != expected:
            raise ValueError(
                f"plateau: state must be a dict with keys {', '.join(sorted(expected))}; "
                f"got {state!r}"
            )
        best = state["best"]
        self.best = math.inf if best is None else check_real("plateau: state ", "best", best)
        self.bad_validations = check_count(
            "plateau: state ", "bad_validations", state["bad_validations"], 0
        )
        self.cooldown_left = check_count(
            "plateau: state ", "cooldown_left", state["cooldown_left"], 0
        )
        self.current_lr = check_real("plateau: state ", "current_lr", state["current_lr"], low=0)
