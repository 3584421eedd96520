"""Loggers: where a run's metrics go (metrics files, TensorBoard, MLflow, your own).

The ``loggers`` option is a list of names or objects (default ``['csv']``,
the ``metrics_format`` file):

- ``'csv'``, ``'jsonl'``: ``run_dir/metrics.csv`` / ``metrics.jsonl``
  (:class:`~trainkit.training.callbacks.MetricsFile`);
- ``'tensorboard'``: event files under ``run_dir/tensorboard/``
  (:class:`TensorBoardLogger`, needs the extra ``tensorboard``:
  ``tensorboardX``);
- ``'mlflow'``: an MLflow run at ``MLFLOW_TRACKING_URI``, or when that is
  unset the file store ``run_dir/mlruns`` (:class:`MLflowLogger`, needs the
  extra ``mlflow``: ``mlflow-skinny``).

A logger is any object with ``log_metrics(step, metrics)``, and optionally
``log_params(params)``, ``close()``, ``start(step)`` and
``log_artifact(path)``:

- ``start(step)`` is called before the first update with the step training
  starts from: 0 for a fresh run, else the last validated step of the
  checkpoint resumed; what was logged after it will be logged again;
- ``log_params(params)`` gets the run's parameters as a flat ``{name:
  value}`` dict (:func:`run_params`: the model, its layers, the algorithm and
  every training keyword);
- ``log_metrics(step, metrics)`` gets, after each validation, the update
  ``step`` and the metrics as a flat dict: ``epoch``, ``lr``, ``seconds``,
  ``skipped``, each training metric prefixed ``train_`` and each validation
  metric prefixed ``valid_`` (the columns of ``metrics.csv``; the training
  metrics include the monitors and ``grad_norm`` when monitored);
- ``close()`` when training ends;
- ``log_artifact(path)`` for files written after training (the command line
  gives ``model.npz`` and ``curves.png``; :func:`log_artifacts`).

The libraries are imported when a run starts, never when trainkit is
imported; naming a logger whose library is missing is one line naming the
extra to install, raised when the options are parsed. In data-parallel runs
rank 0 alone logs.

>>> class Recorder:
...     def __init__(self):
...         self.rows = []
...     def log_metrics(self, step, metrics):
...         self.rows.append((step, round(metrics["valid_loss"], 3)))
>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([2, 1])
>>> X = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
>>> recorder = Recorder()
>>> _ = net.train([X, X[:, :1]], algo="sgd", max_updates=2, validate_every=1, batch_size=32,
...               loggers=[recorder], progress=False, log=False)
>>> [step for step, _ in recorder.rows]
[1, 2]
"""

import importlib.util
import json
import numbers
import os
import re
import time
from pathlib import Path

from regularizers.errors import InvalidArgument, closest, closest_hint, listing

from .callbacks import MetricsFile

__all__ = [
    "LOGGERS",
    "LoggerHook",
    "MLflowLogger",
    "TensorBoardLogger",
    "check_loggers",
    "log_artifacts",
    "resolve",
    "run_params",
    "with_metrics_file",
]

#: logger name -> (the module it imports, the extra that installs it), None: built in
LOGGERS = {
    "csv": None,
    "jsonl": None,
    "tensorboard": ("tensorboardX", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
}

#: the metrics files among the loggers
FILE_LOGGERS = ("csv", "jsonl")


def check_loggers(name, value):
    """The ``loggers`` option: None (the ``metrics_format`` file) or a list of names/objects."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        value = [value]
    seen = set()
    for i, item in enumerate(value):
        if isinstance(item, str):
            if item not in LOGGERS:
                raise InvalidArgument(
                    name,
                    f"unknown logger {item!r}; choose from {listing(list(LOGGERS))} or an "
                    f"object with log_metrics(step, metrics){closest_hint(item, LOGGERS)}",
                    item,
                    list(LOGGERS),
                    closest(item, LOGGERS),
                )
            if item in seen:
                raise InvalidArgument(name, f"{item!r} is named twice, got {value!r}", value)
            seen.add(item)
            needs = LOGGERS[item]
            if needs is not None and importlib.util.find_spec(needs[0]) is None:
                raise InvalidArgument(
                    name,
                    f"{item!r} needs {needs[0]}, which is not installed; install the extra: "
                    f"pip install 'trainkit[{needs[1]}]'",
                    item,
                )
        elif not callable(getattr(item, "log_metrics", None)):
            raise InvalidArgument(
                name,
                f"item {i}: a logger is one of {listing(list(LOGGERS))} or an object with "
                f"log_metrics(step, metrics) (and optionally log_params, close), got {item!r}",
                item,
            )
    return list(value)


def resolve(values, given):
    """Fill in ``loggers`` in parsed options ``values``; check what the names need.

    None becomes ``[metrics_format]``. Names given explicitly need ``run_dir``
    (``'mlflow'`` does without when ``MLFLOW_TRACKING_URI`` is set).
    """
    if values["loggers"] is None:
        values["loggers"] = [values["metrics_format"]]
        return
    if values["run_dir"] is not None:
        return
    for item in values["loggers"]:
        if item == "mlflow" and os.environ.get("MLFLOW_TRACKING_URI"):
            continue
        if isinstance(item, str):
            raise InvalidArgument(
                "loggers",
                f"{item!r} writes into the run directory; set run_dir, got run_dir=None "
                f"with loggers={given!r}",
                given,
            )


def with_metrics_file(loggers, fmt="csv"):
    """``loggers`` with a metrics file in front when it names none (the command line's runs
    always keep ``metrics.csv``, which ``plot``, ``describe`` and sweeps read).

    >>> with_metrics_file(["tensorboard"]), with_metrics_file(["jsonl", "mlflow"])
    (['csv', 'tensorboard'], ['jsonl', 'mlflow'])
    """
    loggers = [] if loggers is None else list(loggers)
    if not any(item in FILE_LOGGERS for item in loggers):
        loggers.insert(0, fmt)
    return loggers


def _text(value):
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return value
    try:
        return json.dumps(value, default=repr, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def run_params(trainer):
    """The run's parameters as a flat dict: the model's (``model``, ``layers``, ...) when
    ``trainer.model_params`` holds them, then ``algo``, the hyperparameters, the
    regularizers and every trainer option."""
    params = dict(getattr(trainer, "model_params", None) or {})
    spec = trainer.spec
    params["algo"] = spec.algo
    for key, value in spec.hyperparameters.items():
        params[key] = value if isinstance(value, numbers.Number) else repr(value)
    for reg in spec.regularizers:
        key = reg.name
        while key in params:  # the same regularizer on two patterns
            key += "'"
        params[key] = repr(reg)
    for key, value in vars(spec.options).items():
        if key in ("callbacks",):
            value = [type(c).__name__ for c in value]
        elif key == "loggers":
            value = [v if isinstance(v, str) else type(v).__name__ for v in value]
        elif key == "data_parallel" and value is not None and not isinstance(value, str):
            value = type(value).__name__
        params[key] = value
    return {key: _text(value) for key, value in params.items()}


class TensorBoardLogger:
    """Scalars in TensorBoard event files under ``run_dir/tensorboard/``.

    One scalar per metric (the names of ``metrics.csv``'s columns:
    ``train_loss``, ``valid_loss``, ``lr``, ...) at the update step. A fresh
    run removes the folder's old event files; a resumed one writes a new
    event file that starts with a purge marker at the step after the
    checkpoint's last validation (tensorboardX's ``purge_step``), so
    TensorBoard hides what the interrupted run logged after it: no step
    appears twice.
    """

    def __init__(self, run_dir):
        self.logdir = os.path.join(os.fspath(run_dir), "tensorboard")
        self.writer = None

    def start(self, step):
        from tensorboardX import SummaryWriter

        os.makedirs(self.logdir, exist_ok=True)
        if step == 0:
            for name in os.listdir(self.logdir):
                if name.startswith("events.out.tfevents."):
                    os.remove(os.path.join(self.logdir, name))
        # event files are named by the second they are made in: a resumed run's file made
        # in the same second as the run's first would replace it, so each gets a suffix
        self.writer = SummaryWriter(
            self.logdir,
            purge_step=step + 1 if step else None,
            filename_suffix=f".{os.getpid()}.{time.time_ns()}",
        )

    def log_params(self, params):
        self.writer.add_text("params", json.dumps(params, indent=1, default=repr), 0)

    def log_metrics(self, step, metrics):
        for key, value in metrics.items():
            if isinstance(value, numbers.Real):
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


_MLFLOW_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


class MLflowLogger:
    """An MLflow run: parameters, metrics at each validation step, artifacts.

    The run goes to ``MLFLOW_TRACKING_URI`` or, when that is unset, the file
    store ``run_dir/mlruns`` (which MLflow 3 keeps behind an opt-in: this sets
    ``MLFLOW_ALLOW_FILE_STORE=true`` in the process's environment unless it is
    set; ``mlflow ui`` needs the same), in the experiment ``MLFLOW_EXPERIMENT_NAME``
    (default ``trainkit``), named after the run directory. Its id is kept in
    ``run_dir/mlflow-run.json``, so a resumed run continues the same MLflow
    run; steps it had already logged (values that bitwise resumption
    reproduces) are not logged again. Metric names keep MLflow's characters
    (others become ``_``).
    """

    def __init__(self, run_dir=None):
        self.run_dir = None if run_dir is None else os.fspath(run_dir)
        self.client = self.run_id = None
        self.logged_until = 0

    @property
    def tracking_uri(self):
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        return uri or Path(self.run_dir, "mlruns").resolve().as_uri()

    def _id_file(self):
        return None if self.run_dir is None else os.path.join(self.run_dir, "mlflow-run.json")

    def start(self, step):
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # MLflow 3 keeps its file store behind an opt-in; the run directory's is ours
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        saved = self._id_file()
        if step and saved and os.path.exists(saved):
            with open(saved, encoding="utf-8") as f:
                self.run_id = json.load(f)["run_id"]
            history = self.client.get_metric_history(self.run_id, "epoch")
            self.logged_until = max((m.step for m in history), default=0)
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "trainkit"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        run_name = os.path.basename(os.path.abspath(self.run_dir)) if self.run_dir else None
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.logged_until = 0
        if saved:
            temporary = saved + ".tmp"
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump({"tracking_uri": uri, "run_id": self.run_id}, f)
            os.replace(temporary, saved)

    def log_params(self, params):
        from mlflow.entities import Param

        have = self.client.get_run(self.run_id).data.params
        new = [
            Param(_MLFLOW_KEY.sub("_", key), str(value)[:6000])  # MLflow's longest value
            for key, value in params.items()
            if _MLFLOW_KEY.sub("_", key) not in have
        ]
        for i in range(0, len(new), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=new[i : i + 100])

    def log_metrics(self, step, metrics):
        import time

        from mlflow.entities import Metric

        if step <= self.logged_until:
            return
        now = int(time.time() * 1000)
        batch = [
            Metric(_MLFLOW_KEY.sub("_", key), float(value), now, step)
            for key, value in metrics.items()
            if isinstance(value, numbers.Real)
        ]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path):
        self.client.log_artifact(self.run_id, os.fspath(path))

    def close(self, status="FINISHED"):
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _build(item, run_dir):
    if not isinstance(item, str):
        return item
    if item in FILE_LOGGERS:
        return MetricsFile(run_dir, item)
    if item == "tensorboard":
        return TensorBoardLogger(run_dir)
    return MLflowLogger(run_dir)


class LoggerHook:
    """The callback that drives the loggers: ``start``, ``log_params`` at the start,
    ``log_metrics`` after each validation, ``close`` at the end.

    Named loggers that write files are left out when there is no ``run_dir``
    (the default ``['csv']`` of a run without one).
    """

    def __init__(self, options):
        run_dir = options.run_dir
        self.loggers = [
            _build(item, run_dir)
            for item in options.loggers
            if not isinstance(item, str)
            or run_dir is not None
            or (item == "mlflow" and os.environ.get("MLFLOW_TRACKING_URI"))
        ]

    def _each(self, method, *args):
        for logger in self.loggers:
            function = getattr(logger, method, None)
            if function is not None:
                function(*args)

    def on_start(self, trainer):
        self._each("start", trainer.validated_at or 0)
        self._each("log_params", run_params(trainer))

    def on_validation(self, trainer, train_metrics, valid_metrics):
        from .callbacks import MetricsFile

        row = MetricsFile.row(train_metrics, valid_metrics)
        step = row.pop("step")
        self._each("log_metrics", step, row)

    def on_end(self, trainer):
        reason = trainer.stop_reason or ""
        failed = trainer.diverged or (
            ":" in reason.split(" ")[0] and not trainer.interrupted
        )  # an exception ends a run with 'ErrorName: message'
        status = "KILLED" if trainer.interrupted else "FAILED" if failed else "FINISHED"
        for logger in self.loggers:
            close = getattr(logger, "close", None)
            if close is None:
                continue
            if isinstance(logger, MLflowLogger):
                close(status)
            else:
                close()


def log_artifacts(trainer, paths):
    """Give files written after training (``model.npz``, ``curves.png``) to every logger of
    ``trainer``'s last run that takes artifacts (``log_artifact``)."""
    for logger in getattr(trainer, "loggers", None) or []:
        function = getattr(logger, "log_artifact", None)
        if function is not None:
            for path in paths:
                if os.path.exists(path):
                    function(path)
