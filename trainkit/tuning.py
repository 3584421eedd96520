"""Hyperparameter search on Optuna: report every validation, prune, stop early.

Optuna is an optional extra (``pip install 'trainkit[sweep]'``), imported
only when a trial is used. In your own objective, :func:`train_trial`
trains a network for one Optuna trial and returns the value to optimise::

    import optuna
    import trainkit
    from trainkit import tuning

    def objective(trial):
        net = trainkit.Classifier([64, trial.suggest_int("hidden", 16, 128), 10])
        return tuning.train_trial(
            trial, net, train, valid, algo="adam",
            learning_rate=trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
            max_updates=2000, validate_every=100)

    study = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner())
    study.optimize(objective, n_trials=50)

Every validation is reported to the trial (``trial.report(value, step)``,
the step being the update count); when the pruner says so, training stops
there and :func:`train_trial` raises ``optuna.TrialPruned``. The value
returned is the best one the metric reached over the trial's validations
(lowest or highest by the study's direction), which is what early stopping
with ``restore_best`` keeps. :class:`PruningCallback` is the same hook for a
loop of your own (``net.train(..., callbacks=[pruning])``).

``trainkit sweep`` (the command line, see docs/sweeps.md) runs whole TOML
configs as trials with this callback.
"""

import math

__all__ = [
    "MetricError",
    "PruningCallback",
    "metric_value",
    "require_optuna",
    "train_trial",
]

EXTRA = "pip install 'trainkit[sweep]'"


class MetricError(LookupError):
    """The metric to optimise is not one that training measures."""


def require_optuna():
    """Import optuna, or raise ImportError naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ImportError(f"optuna is not installed; sweeps need it: {EXTRA}") from None
    return optuna


def metric_value(metric, train_metrics, valid_metrics):
    """The value of ``metric`` in one validation's metrics.

    ``'loss'`` or ``'valid_loss'``: the validation metric; ``'train_loss'``:
    the training one (the column names of metrics.csv).

    >>> metric_value("acc", {"loss": 0.5}, {"loss": 0.4, "acc": 0.9})
    0.9
    >>> metric_value("train_loss", {"loss": 0.5}, {"loss": 0.4})
    0.5
    """
    if metric.startswith("train_"):
        metrics, name = train_metrics, metric[len("train_") :]
    else:
        metrics, name = valid_metrics, metric.removeprefix("valid_")
    if name not in metrics:
        available = [f"valid_{k}" for k in valid_metrics] + [
            f"train_{k}" for k in train_metrics if k not in ("step", "epoch", "lr", "seconds")
        ]
        raise MetricError(f"metric {metric!r}: not measured; metrics are {', '.join(available)}")
    return float(metrics[name])


class PruningCallback:
    """A trainer callback reporting each validation to an Optuna trial, and pruning.

    Parameters
    ----------
    trial : optuna.Trial
    metric : str
        What to report: ``'loss'`` (the validation loss, default), another
        validation metric (``'acc'``), or ``'train_...'``.
    direction : {'minimize', 'maximize'}, optional
        Which values are better (default: the trial's study's direction).

    Attributes
    ----------
    best : float
        The best value reported so far (NaN before the first).
    pruned : str or None
        Why the pruner stopped the trial, or None.
    """

    def __init__(self, trial, metric="loss", direction=None):
        self.trial = trial
        self.metric = metric
        if direction is None:
            direction = "maximize" if trial.study.direction.name == "MAXIMIZE" else "minimize"
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction: must be minimize or maximize, got {direction!r}")
        self.direction = direction
        self.best = math.nan
        self.pruned = None

    def better(self, a, b):
        """Whether value ``a`` beats ``b`` (NaN never beats anything; anything beats NaN)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a < b if self.direction == "minimize" else a > b

    def on_validation(self, trainer, train_metrics, valid_metrics):
        value = metric_value(self.metric, train_metrics, valid_metrics)
        if self.better(value, self.best):
            self.best = value
        step = int(train_metrics["step"])
        self.trial.report(value, step)
        if self.pruned is None and self.trial.should_prune():
            self.pruned = f"pruned at step {step} ({self.metric} {value:.4g})"
            trainer.stop(self.pruned)

    def raise_if_pruned(self):
        """Raise ``optuna.TrialPruned`` if the pruner stopped the trial."""
        if self.pruned is not None:
            raise require_optuna().TrialPruned(self.pruned)


def train_trial(trial, net, train, valid=None, metric="loss", direction=None, **kwargs):
    """Train ``net`` for one Optuna trial, pruning on every validation; return the best value.

    ``kwargs`` are those of ``net.train`` (``callbacks`` are kept, the
    pruning hook joins them). Raises ``optuna.TrialPruned`` when the pruner
    stopped the trial, ValueError when nothing was validated.
    """
    require_optuna()
    pruning = PruningCallback(trial, metric, direction)
    kwargs["callbacks"] = [*kwargs.get("callbacks", ()), pruning]
    net.train(train, valid, **kwargs)
    pruning.raise_if_pruned()
    if math.isnan(pruning.best):
        raise ValueError(f"metric {metric!r}: no validation reported a finite value")
    return pruning.best
