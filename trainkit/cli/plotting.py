"""Pictures of a training run: loss (and accuracy) per validation, as a PNG.

The run directory's metrics file (``metrics.csv`` or ``metrics.jsonl``,
written by the trainer's ``run_dir`` option) has one row per validation;
:func:`plot_curves` draws the training and validation loss against the
update step, and a second panel with any other metric both have (``acc``).
matplotlib draws off-screen (the Agg canvas; pyplot is never imported), so
it works on machines without a display.

>>> rows = [{"step": 10, "train_loss": 1.0, "valid_loss": 1.2},
...         {"step": 20, "train_loss": 0.5, "valid_loss": 0.7}]
>>> figure = plot_curves(rows)
>>> [(line.get_label(), line.get_ydata().tolist()) for line in figure.axes[0].lines]
[('training', [1.0, 0.5]), ('validation', [1.2, 0.7])]
"""

import csv
import json
import math
import os

__all__ = ["METRICS_FILES", "best_row", "read_metrics", "plot_curves", "plot_run"]

#: the metrics files a run directory may hold, in the order they are looked for
METRICS_FILES = ("metrics.csv", "metrics.jsonl")


def _number(value):
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _raw_rows(path):
    """The rows of a metrics file as dicts; ValueError naming the file (and line) if malformed."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            if path.endswith(".jsonl"):
                raw = []
                for number, line in enumerate(file, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as error:
                        raise ValueError(
                            f"{path}: line {number}: not JSON ({error}); a malformed metrics file"
                        ) from None
                    if not isinstance(row, dict):
                        raise ValueError(
                            f"{path}: line {number}: not a JSON object; a malformed metrics file"
                        )
                    raw.append(row)
                return raw
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                return []
            raw = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}: line {reader.line_num}: {len(row)} fields, the header has "
                        f"{len(header)}; a malformed metrics file"
                    )
                raw.append(dict(zip(header, row, strict=True)))
            return raw
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; a malformed metrics file") from None
    except csv.Error as error:
        raise ValueError(f"{path}: {error}; a malformed metrics file") from None


def read_metrics(run_dir):
    """``(path, rows)``: the rows of the run's metrics file, values as floats.

    Raises FileNotFoundError when ``run_dir`` holds neither metrics file.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    for name in METRICS_FILES:
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            break
    else:
        raise FileNotFoundError(
            f"{run_dir}: no metrics file ({' or '.join(METRICS_FILES)}); is it a run directory?"
        )
    rows = [{k: _number(v) for k, v in row.items()} for row in _raw_rows(path)]
    if not rows:
        raise ValueError(f"{path}: no rows yet (nothing has been validated)")
    if "step" not in rows[0]:
        raise ValueError(f"{path}: no 'step' column; not a trainkit metrics file")
    return path, rows


def _pairs(rows):
    """Metrics that both training and validation report, loss first."""
    keys = list(rows[0])
    names = [k[len("valid_") :] for k in keys if k.startswith("valid_")]
    names = [n for n in names if f"train_{n}" in keys]
    return sorted(
        names, key=lambda n: (n != "loss", n not in ("acc", "accuracy"), keys.index(f"valid_{n}"))
    )


def best_row(rows):
    """Index of the validation whose parameters ``restore_best`` restores, or None.

    The trainer keeps the parameters of the lowest finite validation loss,
    replacing them only on a strictly lower one, so on ties it is the first.

    >>> best_row([{"valid_loss": 0.5}, {"valid_loss": 0.3}, {"valid_loss": 0.3}])
    1
    """
    best, lowest = None, math.inf
    for i, row in enumerate(rows):
        loss = row.get("valid_loss", math.nan)
        if math.isfinite(loss) and loss < lowest:
            best, lowest = i, loss
    return best


def plot_curves(rows, path=None, title=None):
    """Draw training and validation curves; save a PNG to ``path`` if given.

    Every panel marks the validation that ``restore_best`` restores (see
    :func:`best_row`): its loss, and the other metric at the same step.

    Parameters
    ----------
    rows : list of dict
        One dict per validation with ``step``, ``train_loss``, ``valid_loss``
        and possibly more ``train_*``/``valid_*`` pairs.
    path : str, optional
        Where to write the PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Its first axes holds the loss lines, labelled ``training`` and
        ``validation``; a second axes, when there is one, the next metric
        both report (``acc`` first).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = _pairs(rows)
    if "loss" not in names:
        raise ValueError("plot: the metrics have no train_loss and valid_loss columns")
    panels = names[:2] if len(names) > 1 and names[1] in ("acc", "accuracy") else ["loss"]
    figure = Figure(figsize=(5.0 * len(panels) + 1.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    steps = [row["step"] for row in rows]
    best = best_row(rows)
    for i, name in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        train = [row[f"train_{name}"] for row in rows]
        valid = [row[f"valid_{name}"] for row in rows]
        axes.plot(steps, train, marker="o", markersize=3, color="tab:blue", label="training")
        axes.plot(steps, valid, marker="o", markersize=3, color="tab:orange", label="validation")
        if best is not None and math.isfinite(valid[best]):
            value = valid[best]
            text = f"best {value:.4g}" if name == "loss" else f"{name} {value:.4g} at best loss"
            axes.annotate(
                text,
                xy=(steps[best], value),
                xytext=(0, 12 if name == "loss" else -14),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
        positive = [v for v in train + valid if math.isfinite(v)]
        if name == "loss" and positive and min(positive) > 0 and max(positive) / min(positive) > 50:
            axes.set_yscale("log")
        axes.set_xlabel("update")
        axes.set_ylabel(name)
        axes.grid(True, alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    if path is not None:
        figure.savefig(path, format="png")
    return figure


def plot_run(run_dir, path=None):
    """Draw ``curves.png`` (or ``path``) from the run directory's metrics file.

    Returns ``(figure, path written)``.
    """
    metrics_path, rows = read_metrics(run_dir)
    if "loss" not in _pairs(rows):
        raise ValueError(
            f"{metrics_path}: no train_loss and valid_loss columns; not a trainkit metrics file"
        )
    path = os.path.join(os.fspath(run_dir), "curves.png") if path is None else os.fspath(path)
    title = os.path.basename(os.path.abspath(run_dir))
    return plot_curves(rows, path, title=title), path
