r"""The three kinds of model: ``Regressor``, ``Classifier``, ``Autoencoder``.

Each is a :class:`~trainkit.models.network.Network` with its own targets,
default loss and output activation, metrics and ``score``.

>>> import numpy as np, trainkit
>>> net = trainkit.Classifier([3, (4, "tanh"), 2])
>>> net.predict(np.zeros((5, 3), "float32")).shape
(5,)
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument

from ..data.arrays import ArraySpec, check_arrays
from . import losses
from .metrics import r2
from .network import Network

__all__ = ["Autoencoder", "Classifier", "Regressor", "load"]


class Regressor(Network):
    """Regression: real targets, mean squared error by default.

    Data are ``[X, Y]`` (optionally ``[X, Y, weights]``) with ``Y`` shaped
    like the output. Losses: ``mse``, ``mae``, ``huber``, ``binary_xent``,
    and ``gll`` (Gaussian log-likelihood), whose output layer has twice the
    targets' width: the predicted mean, then the log-variance (``predict``
    returns both; ``score`` scores the mean).

    >>> import numpy as np, trainkit
    >>> net = trainkit.Regressor([3, 4], loss="gll")  # 2 targets: mean and log-variance
    >>> x = np.zeros((5, 3), "float32")
    >>> net.predict(x).shape  # the mean, then the log-variance, of each target
    (5, 4)
    """

    allowed_losses = ("mse", "mae", "huber", "gll", "binary_xent")

    def _make_targets(self):
        if self.loss_name in losses.DOUBLE_WIDTH and self.output_size % 2:
            raise InvalidArgument(
                "loss",
                f"{self.loss_name!r} needs an output layer of twice the targets' width (the "
                f"mean, then the log-variance), got {self.output_size} units, an odd number; "
                f"use 2k units for k targets",
                self.loss_name,
            )
        return super()._make_targets()

    def _target_spec(self):
        if self.loss_name in losses.DOUBLE_WIDTH:
            n = self.output_size // 2
            return ArraySpec("y", self.output_ndim, n, kind="float", dtype=self.dtype)
        return super()._target_spec()

    def _prediction_of_targets(self, out):
        """The part of the output that predicts the targets (the mean, for ``gll``)."""
        if self.loss_name in losses.DOUBLE_WIDTH:
            return out[..., : self.output_size // 2]
        return out

    def score(self, x, y, weights=None, lengths=None):
        r"""The coefficient of determination :math:`R^2`, averaged over outputs (real steps only)."""
        check_arrays(
            [x, y] + ([] if weights is None else [weights]),
            [self._input_spec(), self._target_spec(), self._weights_spec()],
            argument="score",
        )
        predicted = self._prediction_of_targets(self.predict(x, lengths))
        return r2(y, predicted, self._step_weights(x, weights, lengths))


class Classifier(Network):
    """Classification: integer labels, softmax output and cross-entropy.

    Data are ``[X, labels]`` with labels an int array shaped like the output
    without its last axis (``(batch,)``, or ``(batch, time)`` for per-step
    classification of sequences). ``predict`` returns labels,
    ``predict_proba`` class probabilities. With ``loss='hinge'``
    (Crammer--Singer) the output layer is linear and ``predict_proba``
    returns its scores. The ``class_weight`` training option weighs each
    class in the loss (torch's ``CrossEntropyLoss(weight=)``).
    """

    default_loss = "xent"
    allowed_losses = ("xent", "hinge")
    default_output_activation = "softmax"

    def _make_targets(self):
        ndim = self.output_ndim
        y = pt.tensor("labels", dtype="int64", shape=(None,) * (ndim - 1))
        w = pt.tensor("weights", dtype=self.dtype, shape=(None,) * (ndim - 1))
        return y, w

    def _target_spec(self):
        return ArraySpec(
            "labels",
            self.output_ndim - 1,
            kind="int",
            dtype="int64",
            low=0,
            high=self.output_size - 1,
        )

    def _metrics(self, out, y, weights):
        hits = pt.cast(pt.eq(pt.argmax(out, axis=-1), y), self.dtype)
        acc = pt.mean(hits) if weights is None else pt.sum(weights * hits) / pt.sum(weights)
        return OrderedDict(acc=acc)

    def predict_proba(self, x, lengths=None, batch_size=None, **graph_regularizers):
        """Class probabilities for ``x``, shape ``(..., classes)``."""
        return self._output(x, graph_regularizers, lengths, batch_size)

    def predict(self, x, lengths=None, batch_size=None, **graph_regularizers):
        """The most probable class for each example of ``x``."""
        return np.argmax(self.predict_proba(x, lengths, batch_size, **graph_regularizers), axis=-1)

    def score(self, x, labels, weights=None, lengths=None):
        """Accuracy (weighted by ``weights`` if given; real steps only)."""
        check_arrays(
            [x, labels] + ([] if weights is None else [weights]),
            [self._input_spec(), self._target_spec(), self._weights_spec()],
            argument="score",
        )
        hits = (self.predict(x, lengths) == labels).astype(np.float64)
        weights = self._step_weights(x, weights, lengths)
        if weights is None:
            return float(hits.mean())
        return float((hits * weights).sum() / np.sum(weights))


class Autoencoder(Network):
    """Autoencoder: the output reconstructs the input; data are ``[X]``.

    Losses: ``mse`` (default), ``mae``, ``huber``, ``binary_xent``.
    """

    allowed_losses = ("mse", "mae", "huber", "binary_xent")

    def __init__(self, layers, **kwargs):
        super().__init__(layers, **kwargs)
        if self.output_size != self.n_in or self.output_ndim != self.x.ndim:
            raise InvalidArgument(
                "layers",
                f"an Autoencoder's output layer must match the input, got input size "
                f"{self.n_in} and output size {self.output_size}",
                layers,
            )

    def _target_spec(self):
        return self._input_spec()

    def _target(self):
        """The loss compares with a ``target`` given, when compiling, as the clean ``x``.

        ``x`` is the graph's input, so ``input_noise`` or ``input_dropout``
        replace it everywhere the network reads it; the loss reads ``target``
        instead, which compiling substitutes by the uncorrupted ``x`` (a
        denoising autoencoder). Nothing extra is fed.
        """
        target = self.x.type("target")
        return target, [], [], {target: self.x}

    def score(self, x, weights=None, lengths=None):
        r""":math:`R^2` of the reconstruction of ``x`` (real steps only)."""
        return r2(x, self.predict(x, lengths), self._step_weights(x, weights, lengths))


_CLASSES = {cls.__name__: cls for cls in (Regressor, Classifier, Autoencoder)}


def load(path):
    """Load a model saved with ``net.save(path)`` (see :func:`trainkit.models.io.load`).

    Every declared size is checked before anything is allocated, nothing is
    unpickled, and non-finite parameters are refused, so opening a model
    file from elsewhere can neither run code nor exhaust memory.
    """
    from . import io

    return io.load(path)
