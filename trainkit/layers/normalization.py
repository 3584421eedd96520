r"""Normalisation layers: ``layernorm`` and ``batchnorm``.

``layernorm``
    Over the feature axis of each example (and step, and pixel):

    .. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
              \text{pre} = g \odot \hat x + b

    with :math:`\mu, \sigma^2` the mean and biased variance over the last
    axis, :math:`\epsilon = 10^{-5}` (``torch.nn.LayerNorm``).
``batchnorm``
    The same with :math:`\mu, \sigma^2` taken over every axis but the last
    (the batch, and time or space; the real steps only when lengths are
    given) while training, and the running mean and running unbiased
    variance at validation, ``predict``, ``evaluate`` and ``score``. The
    running statistics start at 0 and 1 and are updated once per update,
    :math:`r \leftarrow (1 - m) r + m s` with ``momentum`` m = 0.1
    (``torch.nn.BatchNorm1d``). They are the layer's *state*
    (``LAYER.running_mean``, ``LAYER.running_var``): not trainable, not seen
    by optimizers or regularizers, saved in model files and checkpoints.

Both have ``LAYER.g`` (ones) and ``LAYER.b`` (zeros), outputs
``LAYER:norm`` (:math:`\hat x`), ``LAYER:pre`` and ``LAYER:out``, and are
linear unless given an ``activation``.

>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([3, 4, dict(form="batchnorm", activation="relu"), 1])
>>> sorted(net.params), sorted(net.state)
(['hid1.b', 'hid1.w', 'hid2.b', 'hid2.g', 'out.b', 'out.w'], ['hid2.running_mean', 'hid2.running_var'])
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument

from .base import Layer, register_form

__all__ = ["BatchNorm", "LayerNorm"]

EPSILON = 1e-5


class _Norm(Layer):
    mixes = False
    needs_size = False

    def output_shape(self, shape):
        return shape

    def named_shapes(self):
        shapes = super().named_shapes()
        shapes[f"{self.name}:norm"] = self.out_shape
        shapes.move_to_end(f"{self.name}:norm", last=False)
        return shapes

    def param_shapes(self):
        width = self.in_shape.width
        return OrderedDict([(f"{self.name}.g", (width,)), (f"{self.name}.b", (width,))])

    def init_params(self, rng):
        width = self.in_shape.width
        self.add_param("g", np.ones(width, self.dtype))
        self.add_param("b", np.zeros(width, self.dtype))


@register_form("layernorm")
class LayerNorm(_Norm):
    """Layer normalisation over the feature axis (Ba et al. 2016)."""

    def build(self, x, lengths=None, impl=None):
        from ..ops.norm import layer_norm

        norm, pre = layer_norm(x, self.p("g"), self.p("b"), eps=EPSILON)
        return self.finish(pre, [("norm", norm)])


@register_form("batchnorm")
class BatchNorm(_Norm):
    """Batch normalisation (Ioffe & Szegedy 2015) with running statistics."""

    options = {"momentum": 0.1}
    quiet_options = ("momentum",)
    #: has state that training graphs update (see ``build_state``)
    stateful = True

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        m = self.config_options["momentum"]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1:
            raise InvalidArgument(self.where, f"momentum must be in [0, 1], got {m!r}")

    def state_shapes(self):
        width = self.in_shape.width
        return OrderedDict(
            [(f"{self.name}.running_mean", (width,)), (f"{self.name}.running_var", (width,))]
        )

    def init_params(self, rng):
        super().init_params(rng)
        width = self.in_shape.width
        self.add_state("running_mean", np.zeros(width, self.dtype))
        self.add_state("running_var", np.ones(width, self.dtype))

    def build(self, x, lengths=None, impl=None):
        outputs, main, _ = self.build_state([x], lengths, impl, training=False)
        return outputs, main

    def build_state(self, xs, lengths=None, impl=None, training=False):
        """(outputs, main output, updates): batch statistics and running updates when
        ``training``, the running statistics otherwise."""
        from ..ops.norm import batch_norm_infer, batch_norm_train, running_update

        x = xs[0] if len(xs) == 1 else pt.concatenate(xs, axis=-1)
        mean = self.state[f"{self.name}.running_mean"]
        var = self.state[f"{self.name}.running_var"]
        g, b = self.p("g"), self.p("b")
        if not training:
            norm, pre = batch_norm_infer(x, g, b, mean, var, eps=EPSILON)
            outputs, main = self.finish(pre, [("norm", norm)])
            return outputs, main, OrderedDict()
        mask = self.real_steps(x, lengths)
        m = self.config_options["momentum"]
        #: the training graph's batch statistics (data-parallel training replaces them)
        self.batch_parts = {}
        norm, pre, batch_mean, batch_var = batch_norm_train(
            x, g, b, eps=EPSILON, mask=mask, parts=self.batch_parts
        )
        self.batch_parts.update(running_mean=mean, running_var=var, momentum=m)
        updates = OrderedDict(
            [
                (mean, running_update(mean, batch_mean, m).astype(self.dtype)),
                (var, running_update(var, batch_var, m).astype(self.dtype)),
            ]
        )
        outputs, main = self.finish(pre, [("norm", norm)])
        return outputs, main, updates
