r"""Loss and metrics of a network on held-out arrays, computed in numpy.

:func:`evaluate_arrays` predicts in batches and compares with the targets the
way the trainer's validation does (:mod:`trainkit.models.losses`): a
per-example error :math:`e_b` (averaged over output units; for sequences an
example is one time step), combined as the weighted mean
:math:`\sum_b w_b e_b / \sum_b w_b` (the plain mean without weights). With
sequence ``lengths``, padded steps of a sequence output weigh 0.

=============  ==========================================================
model          metrics
=============  ==========================================================
Regressor      ``loss`` (its loss), ``mse``, ``mae``, ``r2``
Classifier     ``loss`` (cross-entropy), ``acc``
Autoencoder    ``loss`` (its loss), ``mse``, ``mae``, ``r2`` (targets: ``x``)
=============  ==========================================================

``r2`` is :math:`R^2` averaged over outputs, as ``net.score`` computes it.
Cross-entropies are computed from the predicted probabilities, clipped to
``[1e-12, 1 - 1e-12]``, so they match the trainer's (computed from the
pre-activation) except where a probability rounds to 0 or 1.

>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([2, 1])
>>> x = np.ones((4, 2), "float32")
>>> sorted(evaluate_arrays(net, x, net.predict(x)).items())
[('loss', 0.0), ('mae', 0.0), ('mse', 0.0), ('r2', 1.0)]
"""

import numpy as np

from ..data.arrays import check_arrays
from . import losses

__all__ = ["evaluate_arrays", "r2"]

_TINY = 1e-12


def _mean(errors, weights):
    """Weighted mean of per-example errors (0 when every weight is 0)."""
    if weights is None:
        return float(errors.mean()) if errors.size else float("nan")
    total = float(weights.sum())
    return float((weights * errors).sum() / total) if total > 0 else 0.0


def r2(y, yhat, weights=None):
    """The coefficient of determination averaged over outputs (scikit-learn's default)."""
    y = y.reshape(-1, y.shape[-1]).astype(np.float64)
    yhat = yhat.reshape(-1, yhat.shape[-1]).astype(np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    mean = (w[:, None] * y).sum(0) / w.sum()
    ss_res = (w[:, None] * (y - yhat) ** 2).sum(0)
    ss_tot = (w[:, None] * (y - mean) ** 2).sum(0)
    ok = ss_tot > 0
    per_output = np.where(ok, 1 - ss_res / np.where(ok, ss_tot, 1), np.where(ss_res > 0, 0.0, 1.0))
    return float(per_output.mean())


def _outputs(net, x, lengths, batch_size, proba):
    function = net.predict_proba if proba else net.predict
    if batch_size is None or len(x) <= batch_size:
        return np.asarray(function(np.asarray(x, dtype=net.dtype), lengths), np.float64)
    chunks = [
        function(
            np.asarray(x[start : start + batch_size], dtype=net.dtype),
            None if lengths is None else lengths[start : start + batch_size],
        )
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(chunks).astype(np.float64)


def evaluate_arrays(net, x, y=None, weights=None, batch_size=None, lengths=None):
    """Loss and metrics of ``net`` on ``x`` (and targets ``y``): a dict of floats.

    Parameters
    ----------
    net : Regressor, Classifier or Autoencoder
    x : array_like
        Inputs, batch-major.
    y : array_like, optional
        Targets: real values shaped like the output (Regressor), integer
        labels (Classifier); an Autoencoder takes none (its target is ``x``).
    weights : array_like, optional
        Sample weights, shaped like the output without its last axis.
    batch_size : int, optional
        Examples per prediction call (default: all at once).
    lengths : array_like, optional
        Real steps of each sequence, for a model whose input entry says
        ``lengths=True`` (default: every step is real). The network reads
        only the real steps, and padded steps of a sequence output weigh 0.

    Returns
    -------
    dict of str to float
        ``loss`` first, then the model's metrics (see the module docstring).

    Raises
    ------
    ValueError
        For arrays that do not fit the model (the message names the array),
        lengths given to a model without them, and weights that are 0 on
        every real step.
    """
    kind = type(net).__name__
    autoencoder = kind == "Autoencoder"
    if autoencoder:
        if y is not None:
            raise ValueError("evaluate: an Autoencoder's target is its input; give no y")
        arrays, specs = [x], [net._input_spec()]
    else:
        if y is None:
            raise ValueError(f"evaluate: a {kind} needs targets y")
        arrays, specs = [x, y], [net._input_spec(), net._target_spec()]
    if net.lengths is None and lengths is not None:
        net._check_lengths(x, lengths, argument="evaluate: lengths")
    if net.lengths is not None and lengths is not None:
        arrays.append(lengths)
        specs.append(net._lengths_spec())
    if weights is not None:
        arrays.append(weights)
        specs.append(net._weights_spec())
    check_arrays(arrays, specs, argument="evaluate")
    if lengths is not None:
        lengths = np.asarray(lengths).astype("int32")
    w = None if weights is None else np.asarray(weights, np.float64)
    w = net._step_weights(x, w, lengths, argument="evaluate")
    if kind == "Classifier":
        proba = _outputs(net, x, lengths, batch_size, proba=True)
        labels = np.asarray(y).astype(np.int64)
        picked = np.take_along_axis(proba, labels[..., None], axis=-1)[..., 0]
        hits = (proba.argmax(axis=-1) == labels).astype(np.float64)
        if net.loss_name in losses.NUMPY:  # hinge: the outputs are scores
            loss = _mean(losses.NUMPY[net.loss_name](proba, labels), w)
        else:
            loss = _mean(-np.log(np.clip(picked, _TINY, 1.0)), w)
        return {"loss": loss, "acc": _mean(hits, w)}
    full = _outputs(net, x, lengths, batch_size, proba=False)
    out = full if autoencoder else net._prediction_of_targets(full)
    target = np.asarray(x if autoencoder else y, np.float64)
    metrics = {
        "mse": _mean(((out - target) ** 2).mean(axis=-1), w),
        "mae": _mean(np.abs(out - target).mean(axis=-1), w),
    }
    if net.loss_name == "binary_xent":
        p = np.clip(out, _TINY, 1.0 - _TINY)
        errors = -(target * np.log(p) + (1.0 - target) * np.log1p(-p)).mean(axis=-1)
        loss = _mean(errors, w)
    elif net.loss_name in losses.NUMPY:  # huber, gll (on the mean and log-variance)
        loss = _mean(losses.NUMPY[net.loss_name](full, target), w)
    else:
        loss = metrics[net.loss_name]
    return {"loss": loss, **metrics, "r2": r2(target, out, w)}
