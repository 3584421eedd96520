"""Training a network: ``train`` and ``itertrain`` hand its ``Task`` and data to a Trainer.

:class:`Fitting` is a base of :class:`~trainkit.models.network.Network`:
it turns the data arguments into lists of arrays (sample weights of one
added to the side that has none when the other has them), fixes the scan
length for ``mode='JAX'``, and hands the network's :class:`~trainkit.models.task.Task`
and every keyword to a :class:`~trainkit.Trainer`, which parses them once.
"""

import logging
from functools import partial

import numpy as np

from regularizers.errors import InvalidArgument

from ..backend import is_jax
from ..training.lr_finder import find_learning_rate
from ..training.trainer import Trainer
from . import io
from .graphbuild import check_memory

__all__ = ["Fitting"]

logger = logging.getLogger("trainkit")


class Fitting:
    """``train`` and ``itertrain`` of a :class:`~trainkit.models.network.Network`.

    Uses the network's ``task``, ``output_ndim``, ``dtype``, ``mode``,
    ``is_recurrent``, ``layers`` and ``static_time``; sets ``trainer``.
    """

    def _arrays(self, data):
        """A data argument as a list of arrays when it is arrays, else as given."""
        if isinstance(data, np.ndarray):
            return [data]
        if (
            isinstance(data, (list, tuple))
            and data
            and all(isinstance(a, np.ndarray) for a in data)
        ):
            return list(data)
        return data

    def _class_weight(self, value):
        """The ``class_weight`` option as one weight per class, checked against this network.

        The option's own check (:mod:`trainkit.training.options`) runs first;
        then the classes and the list's length are checked against the output
        layer, all before any graph is built.
        """
        from ..training import options as trainer_options
        from . import losses

        trainer_options.OPTIONS["class_weight"].check("class_weight", value)
        if self.loss_name not in losses.CLASS_WEIGHTED:
            raise InvalidArgument(
                "class_weight",
                f"only a Classifier's loss ({', '.join(losses.CLASS_WEIGHTED)}) takes class "
                f"weights; this {type(self).__name__} uses {self.loss_name!r}",
                value,
            )
        return losses.class_weights(value, self.output_size)

    def _loss_weights(self, weights, target, class_weight):
        """The weights the loss sees: sample weights (or None) times each example's class weight."""
        if class_weight is None:
            return weights
        from . import losses

        return losses.class_weighted(weights, target, class_weight, self.dtype)

    def _second_order_mode(self, mode):
        """The mode for ``contractive`` through recurrent layers, which JAX cannot compile.

        Its second derivatives differentiate a scan twice (the fused op's
        reference), and PyTensor's JAX backend cannot trace that. Under the
        default mode this run compiles with Numba instead (and says so); a
        user who asked for JAX gets the reason before anything compiles.
        """
        if mode is not None:
            raise InvalidArgument(
                "mode",
                f"contractive through recurrent layers differentiates a recurrence twice, "
                f"which PyTensor's JAX backend cannot compile; got {mode!r}, use 'NUMBA' "
                f"(or leave mode unset)",
                mode,
            )
        logger.info(
            "contractive through recurrent layers: compiling with NUMBA (the default "
            "backend, JAX, cannot differentiate a recurrence twice)"
        )
        return "NUMBA"

    def _trainer(self, train, valid, algo, kwargs):
        cw = kwargs.pop("class_weight", None)  # built into the loss, not a Trainer option
        cw = None if cw is None else self._class_weight(cw)
        train = self._arrays(train)
        valid = None if valid is None else self._arrays(valid)
        n_inputs = len(self.task().inputs)
        arrays = [a for a in (train, valid) if isinstance(a, list)]
        # sample weights on either side: the other side counts every example once
        weighted = any(len(a) == n_inputs + 1 for a in arrays)
        if weighted:
            train, valid = (
                [*a, np.ones(a[0].shape[: self.output_ndim - 1], self.dtype)]
                if isinstance(a, list) and len(a) == n_inputs
                else a
                for a in (train, valid)
            )
        mode = kwargs.get("mode", self.mode)
        impl = None
        if self.is_recurrent and kwargs.get("contractive"):
            # second derivatives through a recurrence: the scan implementation serves them
            # (the fused op's own second derivatives fail a shape check on Numba)
            impl = "scan"
            if is_jax(mode):
                mode = kwargs["mode"] = self._second_order_mode(mode)
        check_memory(self.structure, self.dtype, training=True)
        for data, argument in ((train, "train"), (valid, "valid")):
            if self.is_sequence and isinstance(data, list) and data and np.ndim(data[0]) >= 2:
                self.structure.check_time(int(np.shape(data[0])[1]), argument)
        time_steps = None
        if (
            self.is_sequence
            and is_jax(mode)
            and any(layer.needs_static_time(impl) for layer in self.layers)
        ):
            if not isinstance(train, list):
                raise ValueError(
                    "train: mode='JAX' with recurrent layers needs array data, whose sequence "
                    "length fixes the scan length (as it does for convolution, pooling, "
                    "attention and learned positions)"
                )
            time_steps = self.static_time(mode, train[0], impl)
        task = self.task(weighted=weighted, time_steps=time_steps, impl=impl, class_weight=cw)
        kwargs.setdefault("mode", self.mode)
        trainer = Trainer(
            task.graph,
            task.loss,
            task.inputs,
            algo=algo,
            metrics=task.metrics,
            specs=task.specs,
            loss_name=task.loss_name,
            givens=task.givens,
            batch_weight=task.batch_weight,
            **kwargs,
        )
        # what loggers record of the model (trainkit.training.loggers.run_params)
        trainer.model_params = {"model": type(self).__name__, **self.config()}
        # how keep_best writes a model file (trainkit.training.best_models)
        trainer.save_model = partial(io.save, self)
        if trainer.parallel and self.state:
            stateful = [layer for layer in self.layers if getattr(layer, "stateful", False)]
            if len(stateful) > 1:
                raise InvalidArgument(
                    "data_parallel",
                    f"{len(stateful)} batchnorm layers with several processes: the global "
                    "batch's statistics are all-reduced for one batchnorm layer only; use one "
                    "process, one batchnorm layer, or layernorm",
                )
            from ..training import sync_batchnorm

            sync_batchnorm.check(stateful[0].batch_parts, trainer.assembly)
            #: the layer whose statistics the processes all-reduce (trainkit.training.sync_batchnorm)
            trainer.sync_batchnorm = stateful[0].batch_parts
        self.trainer = trainer
        return trainer, train, valid

    def itertrain(self, train, valid=None, algo=None, **kwargs):
        """Train, yielding ``(train_metrics, valid_metrics)`` after each validation.

        Parameters
        ----------
        train, valid
            ``[X, Y]`` (``[X]`` for an autoencoder), optionally with a trailing
            sample-weight array; or a callable returning one batch per call;
            or an iterable of batches. ``valid`` defaults to ``train``.
        algo : str, optional
            Optimizer name (default ``'rmsprop'``, theanets' default).
        **kwargs
            Optimizer hyperparameters, regularizers and trainer options (see
            :mod:`trainkit.training.spec` and :mod:`trainkit.training.options`),
            parsed once, by the :class:`~trainkit.Trainer`.

        Returns
        -------
        generator
            Keywords are checked when this is called; data are checked, and
            functions compiled, when the generator starts. ``net.trainer`` is
            the :class:`~trainkit.Trainer` (``stop_reason``, ``best_step``, ...).
        """
        trainer, train, valid = self._trainer(train, valid, algo, kwargs)
        return trainer.itertrain(train, valid)

    def find_learning_rate(
        self,
        train,
        algo=None,
        *,
        min_lr=1e-8,
        max_lr=1.0,
        num_updates=100,
        early_stop_threshold=4.0,
        beta=0.98,
        **kwargs,
    ):
        """Run a learning-rate range test (Smith 2015) on ``train``; the network is left as it was.

        The rate grows exponentially from ``min_lr`` to ``max_lr`` over at most
        ``num_updates`` updates; the test stops early when the smoothed training
        loss exceeds ``early_stop_threshold`` times its lowest (Lightning's
        defaults). ``algo`` and ``**kwargs`` are what :meth:`train` takes (the
        learning rate, its schedule and the limits are the test's). See
        :mod:`trainkit.training.lr_finder`.

        Returns
        -------
        RangeTest
            ``rates``, smoothed ``losses``, ``raw_losses``, ``suggestion`` and
            ``plot(path)``.
        """
        previous = getattr(self, "trainer", None)
        try:
            trainer, train, _ = self._trainer(train, None, algo, kwargs)
        finally:
            self.trainer = previous
        return find_learning_rate(
            trainer,
            train,
            min_lr=min_lr,
            max_lr=max_lr,
            num_updates=num_updates,
            early_stop_threshold=early_stop_threshold,
            beta=beta,
        )

    def train(self, train, valid=None, algo=None, **kwargs):
        """Train to the end; return the last ``(train_metrics, valid_metrics)``."""
        trainer, train, valid = self._trainer(train, valid, algo, kwargs)
        return trainer.train(train, valid)
