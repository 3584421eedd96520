r"""The learning-rate range test (Smith 2015): ``net.find_learning_rate(train, ...)``.

Training runs for up to ``num_updates`` updates while the learning rate grows
exponentially from ``min_lr`` to ``max_lr``; update :math:`i = 0, 1, \dots`
uses

.. math::

    \eta_i = \eta_{min} \, (\eta_{max} / \eta_{min})^{i / N},

and its training loss :math:`\ell_i` (of the batch, before the update) is
smoothed with a bias-corrected exponential average,

.. math::

    a_i = \beta a_{i-1} + (1 - \beta) \ell_i, \quad a_{-1} = 0, \qquad
    s_i = a_i / (1 - \beta^{i+1}).

The test stops after the first update :math:`i \ge 1` whose :math:`s_i`
exceeds ``early_stop_threshold`` times the lowest smoothed loss before it,
or whose loss is not finite (a diverged run). The defaults are Lightning's
``Tuner.lr_find``: ``min_lr=1e-8``, ``max_lr=1``, ``num_updates=100``,
``early_stop_threshold=4``, :math:`\beta = 0.98`. The suggested rate is
where the smoothed loss falls fastest: the rate of the most negative
:math:`\mathrm{d} s / \mathrm{d} \log \eta` (numpy's ``gradient`` over the
finite losses), leaving out the first 10 and the last update, as
Lightning's ``suggestion(skip_begin=10, skip_end=1)``; Lightning 2 takes the
derivative with respect to :math:`\eta` itself, which favours the smallest
rates, where we follow the steepest slope of the plot (log-scaled rates, as
Lightning 1 and fastai's ``steep``). With fewer than two points left there
is no suggestion (None).

Everything the test changes is put back bitwise afterwards: parameters,
optimizer state, random generators and the learning-rate variable (which
the schedule and checkpoints never see). The test runs on the trainer's
compiled step (one compiled function, or the split step with
``accumulate``); under JAX, a trainer whose step draws random numbers
compiles afresh for its next run, since the compiled function's own copy of
each generator cannot be wound back.

>>> import numpy as np, trainkit
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(256, 4)).astype("float32")
>>> Y = X @ rng.normal(size=(4, 1)).astype("float32")
>>> net = trainkit.Regressor([4, 1])
>>> before = net.params["out.w"].get_value().copy()
>>> found = net.find_learning_rate([X, Y], algo="sgd", batch_size=256, max_lr=10.0)
>>> len(found.rates) <= 100 and found.rates[0] == 1e-8
True
>>> found.stop_reason.startswith("the smoothed loss exceeded 4 times its lowest")
True
>>> 0.01 < found.suggestion < 1.0
True
>>> np.array_equal(net.params["out.w"].get_value(), before)
True
"""

import math
from dataclasses import dataclass, field

import numpy as np

from regularizers.errors import InvalidArgument

from ..data.split import training_datasets
from . import state, updates
from .threads import limit_threads

__all__ = [
    "DEFAULTS",
    "LearningRateFinder",
    "RangeTest",
    "check_settings",
    "find_learning_rate",
    "suggest",
]

#: Lightning's defaults
DEFAULTS = dict(min_lr=1e-8, max_lr=1.0, num_updates=100, early_stop_threshold=4.0, beta=0.98)


def suggest(rates, losses, skip_begin=10, skip_end=1):
    """The rate where ``losses`` fall fastest against ``log(rates)``, or None.

    >>> rates = np.logspace(-4, 0, 30)
    >>> losses = 1 / (1 + np.exp(4 * (np.log10(rates) + 2)))  # steepest at 1e-2
    >>> float(np.round(suggest(rates, losses), 3))
    0.01
    """
    rates = np.asarray(rates, dtype=np.float64)[skip_begin : len(rates) - skip_end]
    losses = np.asarray(losses, dtype=np.float64)[skip_begin : len(losses) - skip_end]
    finite = np.isfinite(losses)
    rates, losses = rates[finite], losses[finite]
    if len(losses) < 2:
        return None
    slopes = np.gradient(losses, np.log(rates))
    return float(rates[int(np.argmin(slopes))])


@dataclass
class RangeTest:
    """What :func:`find_learning_rate` found.

    Attributes
    ----------
    rates : list of float
        The learning rate of each update made.
    losses : list of float
        The smoothed training loss after each (:math:`s_i`).
    raw_losses : list of float
        The training loss of each update's batch (:math:`\\ell_i`; inf when
        it was not finite).
    suggestion : float or None
        The rate where the smoothed loss falls fastest.
    stop_reason : str
        Why the test ended.
    """

    rates: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    raw_losses: list = field(default_factory=list)
    suggestion: float | None = None
    stop_reason: str = ""

    def plot(self, path=None):
        """Draw the smoothed loss against the rate (log scale), the suggestion marked;
        write a PNG to ``path`` when given. Returns the matplotlib figure."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        losses = np.asarray(self.losses, dtype=np.float64)
        axes.plot(self.rates, np.where(np.isfinite(losses), losses, np.nan), color="tab:blue")
        if self.suggestion is not None:
            at = self.rates.index(self.suggestion)
            axes.plot([self.suggestion], [losses[at]], "o", color="tab:red", markersize=8)
            axes.set_title(f"suggested learning rate {self.suggestion:.3g}")
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("training loss (smoothed)")
        axes.grid(True, alpha=0.3)
        if path is not None:
            figure.savefig(path, format="png")
        return figure


def _check(name, value, low, high, integer=False):
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        allowed = f"an int >= {low}"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low < value < high
        allowed = f"a number in ({low:g}, {high:g})"
    if not ok:
        raise InvalidArgument(name, f"must be {allowed}, got {value!r}", value)


def check_settings(min_lr, max_lr, num_updates, early_stop_threshold, beta):
    """Range-check the test's settings (InvalidArgument naming the first bad one)."""
    _check("min_lr", min_lr, 0.0, math.inf)
    _check("max_lr", max_lr, 0.0, math.inf)
    if not min_lr < max_lr:
        raise InvalidArgument("max_lr", f"must be above min_lr={min_lr!r}, got {max_lr!r}", max_lr)
    _check("num_updates", num_updates, 2, None, integer=True)
    if early_stop_threshold is not None:
        _check("early_stop_threshold", early_stop_threshold, 1.0, math.inf)
    _check("beta", beta, 0.0, 1.0)


class LearningRateFinder:
    """Runs the range test on a :class:`~trainkit.Trainer` and puts its state back."""

    def __init__(self, trainer, **settings):
        settings = {**DEFAULTS, **settings}
        check_settings(**settings)
        if trainer.lr is None:
            raise InvalidArgument(
                "algo",
                f"{trainer.algo} has no learning rate for a range test to vary; use an "
                f"algorithm that has one (sgd, momentum, adam, rmsprop, ...)",
                trainer.algo,
            )
        self.trainer = trainer
        self.settings = settings

    def run(self, train):
        """Run the test on training data ``train``; return a :class:`RangeTest`."""
        t, s = self.trainer, self.settings
        t.reset()
        t.dataset, _ = training_datasets(train, None, t.specs, t.options)
        with limit_threads(t.options.threads):
            t.compile()
            state.as_numpy(t)
            saved = _snapshot(t)
            try:
                result = self._loop(s)
            finally:
                _restore(t, saved)
                t.reset()
        result.suggestion = suggest(result.rates, result.losses)
        return result

    def _loop(self, s):
        t = self.trainer
        result = RangeTest()
        dtype = np.asarray(t.lr.get_value()).dtype
        ratio = s["max_lr"] / s["min_lr"]
        average, best = 0.0, math.inf
        for i in range(s["num_updates"]):
            if t.dataset.exhausted:
                result.stop_reason = "training data exhausted"
                return result
            rate = s["min_lr"] * ratio ** (i / s["num_updates"])
            t.lr.set_value(np.asarray(rate, dtype=dtype))
            loss = self._update()
            result.rates.append(float(rate))
            result.raw_losses.append(loss)
            average = s["beta"] * average + (1 - s["beta"]) * loss
            smoothed = average / (1 - s["beta"] ** (i + 1))
            result.losses.append(smoothed)
            if not math.isfinite(loss):
                result.stop_reason = f"the loss was not finite at learning rate {rate:.3g}"
                return result
            threshold = s["early_stop_threshold"]
            if threshold is not None and i > 0 and smoothed > threshold * best:
                result.stop_reason = (
                    f"the smoothed loss exceeded {threshold:g} times its lowest at learning "
                    f"rate {rate:.3g}"
                )
                return result
            best = min(best, smoothed)
        result.stop_reason = f"num_updates={s['num_updates']} reached"
        return result

    def _update(self):
        """One update at the current rate; its batch's training loss (inf if not finite)."""
        t = self.trainer
        skipped = t.skipped
        t.last_loss = math.nan
        try:
            updates.update(t)
        except FloatingPointError:
            return math.inf
        t.window.clear()
        t.stop_reason = None
        if t.skipped > skipped or not math.isfinite(t.last_loss):
            return math.inf
        return float(t.last_loss)


def _snapshot(trainer):
    out = {}
    for name, var in trainer.state_variables.items():
        value = var.get_value(borrow=True)
        if state.is_rng(var):
            copy = np.random.default_rng()
            copy.bit_generator.state = value.bit_generator.state
            out[name] = copy
        else:
            out[name] = np.array(value, copy=True)
    return out


def _restore(trainer, saved):
    if trainer.compiled is not None and trainer.compiled.split:
        trainer.compiled.clear()  # nothing half-accumulated survives the test
    for name, var in trainer.state_variables.items():
        if state.is_rng(var):
            var.set_value(saved[name], borrow=True)
        else:
            var.set_value(np.array(saved[name], copy=True))
    draws = any(state.is_rng(var) for var in trainer.state_variables.values())
    if draws and _is_jax(trainer):
        # the compiled function keeps its own copy of each generator: compile again
        trainer.uncompile()


def _is_jax(trainer):
    from ..backend import is_jax

    return is_jax(trainer.options.mode)


def find_learning_rate(trainer, train, **settings):
    """Run the range test on ``trainer`` with training data ``train``
    (:class:`LearningRateFinder`); settings ``min_lr``, ``max_lr``,
    ``num_updates``, ``early_stop_threshold``, ``beta``."""
    return LearningRateFinder(trainer, **settings).run(train)
