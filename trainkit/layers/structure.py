r"""Layers that shape the graph: ``add``, ``tied``, ``embedding``, ``position``, ``flatten``.

``add``
    Elementwise sum of same-shape inputs (``inputs=['hid1', 'hid3']``), for
    residual connections; no parameters.
``tied``
    ``dict(form='tied', partner='hid1')``: :math:`x W_{partner}^T + b`, with
    only ``LAYER.b`` of its own, so penalties on ``hid1.w`` count it once
    (autoencoders with tied weights).
``embedding``
    ``dict(form='embedding', size=D)`` right after a ``vocab=V`` input:
    row ``x[b, t]`` of ``LAYER.w`` ``(V, D)`` (Keras' uniform(-0.05, 0.05)).
``position``
    Adds position information to a sequence: a learned ``LAYER.w``
    ``(max_length, width)`` (normal, sd 0.02), or with ``kind='sine'`` the
    fixed encoding of Vaswani et al. (2017), :math:`PE_{t, 2i} = \sin(t /
    10000^{2i/d})`, :math:`PE_{t, 2i+1} = \cos(t / 10000^{2i/d})`.
``flatten``
    ``(batch, H, W, C)`` to ``(batch, H W C)`` in C order, channels last
    (as Keras' ``Flatten`` on channels-last data).

>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([3, dict(size=4, name="h"), dict(form="tied", partner="h")])
>>> sorted(net.params)
['h.b', 'h.w', 'out.b']
>>> net.predict(np.ones((2, 3), "float32")).shape
(2, 3)
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument

from .base import Layer, register_form
from .shapes import Shape

__all__ = ["Add", "Embedding", "Flatten", "Position", "Tied"]


@register_form("add")
class Add(Layer):
    """Elementwise sum of two or more same-shape inputs (residual connections)."""

    mixes = False
    needs_size = False
    reads = ("features", "sequence", "image")
    #: reads its inputs side by side rather than concatenated
    many = True

    def output_shape(self, shape):
        if len(self.input_names) < 2:
            raise self.fail(
                "needs inputs= naming at least two outputs of the same shape, e.g. "
                "inputs=['hid1', 'hid3']"
            )
        for name, other in zip(self.input_names[1:], self.in_shapes[1:], strict=True):
            if other != shape:
                raise self.fail(
                    f"adds {self.input_names[0]!r} {shape} and {name!r} {other}; the "
                    "shapes must be equal"
                )
        return shape

    def init_params(self, rng):
        pass

    def build_from(self, xs, lengths=None, impl=None):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return self.finish(total)


@register_form("tied")
class Tied(Layer):
    r"""The transpose of an earlier layer's weight: :math:`x W_{partner}^T + b`."""

    options = {"partner": None}
    needs_size = False

    def link(self, layers):
        partner = self.config_options["partner"]
        if not isinstance(partner, str):
            raise self.fail(f"needs partner= naming an earlier layer, got {partner!r}")
        layer = layers.get(partner)
        if layer is None:
            from regularizers.errors import closest_hint

            raise self.fail(
                f"partner {partner!r} is not an earlier layer; earlier layers: "
                f"{', '.join(layers) or 'none'}{closest_hint(partner, list(layers))}"
            )
        shape = layer.param_shapes().get(f"{partner}.w")
        if shape is None or len(shape) != 2:
            raise self.fail(
                f"partner {partner!r} ({layer.form}) has no 2-D weight {partner}.w to transpose"
            )
        self.partner = layer
        self.partner_shape = shape

    def output_shape(self, shape):
        n_in, n_out = self.partner_shape
        if shape.width != n_out:
            raise self.fail(
                f"partner {self.partner.name!r} has weight {self.partner.name}.w of shape "
                f"{n_in}x{n_out}, so it reads {n_out} features; it gets {shape.width} from "
                f"{', '.join(map(repr, self.input_names))} {shape}"
            )
        return shape.with_width(n_in)

    def param_shapes(self):
        return OrderedDict([(f"{self.name}.b", (self.partner_shape[0],))])

    def init_params(self, rng):
        self.add_param("b", np.zeros(self.partner_shape[0], self.dtype))

    def build(self, x, lengths=None, impl=None):
        w = self.partner.params[f"{self.partner.name}.w"]
        return self.finish(x @ w.T + self.p("b"))


#: vocabularies up to this size embed by a one-hot product (see ``Embedding.build``)
ONE_HOT_VOCAB = 4096


@register_form("embedding")
class Embedding(Layer):
    """Rows of ``LAYER.w`` ``(V, D)`` picked by integer token ids."""

    mixes = False
    sequence_form = True
    reads = ("tokens",)

    def output_shape(self, shape):
        return Shape("sequence", (self.size,), shape.timeline)

    def param_shapes(self):
        return OrderedDict([(f"{self.name}.w", (self.in_shape.vocab, self.size))])

    def init_params(self, rng):
        shape = (self.in_shape.vocab, self.size)
        self.add_param("w", rng.uniform(-0.05, 0.05, size=shape))

    def build(self, x, lengths=None, impl=None):
        # a flat take and a reshape to (x's shape, size): JAX needs a reshape's shape built
        # from shapes and constants, which the rewrite of w[x] does not keep
        w = self.p("w")
        vocab = self.in_shape.vocab
        if vocab <= ONE_HOT_VOCAB:
            # a one-hot product: its gradient is a product too, where the gradient of a
            # gather's reshape builds a shape from arithmetic that JAX cannot trace
            one_hot = pt.eq(x[:, :, None], np.arange(vocab, dtype="int32")[None, None, :])
            return self.finish(pt.cast(one_hot, w.dtype) @ w)
        rows = pt.take(w, x.flatten(), axis=0)
        return self.finish(rows.reshape((x.shape[0], x.shape[1], self.size)))


@register_form("position")
class Position(Layer):
    """Adds a learned (``max_length``) or sinusoidal (``kind='sine'``) position encoding."""

    mixes = False
    sequence_form = True
    reads = ("sequence",)
    needs_size = False
    options = {"kind": "learned", "max_length": None}
    quiet_options = ("max_length",)

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        kind, limit = self.config_options["kind"], self.config_options["max_length"]
        if kind not in ("learned", "sine"):
            raise InvalidArgument(self.where, f"kind must be 'learned' or 'sine', got {kind!r}")
        if kind == "learned":
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
                raise InvalidArgument(
                    self.where,
                    f"a learned position layer needs max_length= (a positive int, the longest "
                    f"sequence), got {limit!r}; or kind='sine'",
                )
        elif limit is not None:
            raise InvalidArgument(self.where, "kind='sine' takes no max_length")

    @property
    def max_length(self):
        return self.config_options["max_length"]

    def output_shape(self, shape):
        return shape

    def param_shapes(self):
        if self.config_options["kind"] == "sine":
            return OrderedDict()
        return OrderedDict([(f"{self.name}.w", (self.max_length, self.in_shape.width))])

    def init_params(self, rng):
        if self.config_options["kind"] == "learned":
            self.add_param("w", rng.normal(0.0, 0.02, size=(self.max_length, self.in_shape.width)))

    def needs_static_time(self, impl=None):
        return self.config_options["kind"] == "learned"

    def build(self, x, lengths=None, impl=None):
        if self.config_options["kind"] == "learned":
            n = x.type.shape[1]
            table = self.p("w")[: x.shape[1] if n is None else n]
        else:
            table = sine_table(x, self.in_shape.width)
        return self.finish(x + table[None, :, :])


def sine_table(x, width):
    """``(time, width)`` sinusoidal encoding for the time axis of ``x`` (symbolic length).

    Even columns :math:`\\sin(t \\omega_i)`, odd ones :math:`\\cos(t \\omega_i)
    = \\sin(t \\omega_i + \\pi/2)`, :math:`\\omega_i = 10000^{-2i/d}`.
    """
    dtype = x.dtype
    t = pt.cumsum(pt.ones_like(x[0, :, 0], dtype=dtype), axis=0) - np.asarray(1, dtype)
    pairs = np.arange(width) // 2
    freq = np.exp(-np.log(10000.0) * 2 * pairs / width).astype(dtype)
    phase = np.where(np.arange(width) % 2 == 1, np.pi / 2, 0.0).astype(dtype)
    return pt.sin(t[:, None] * freq[None, :] + phase[None, :])


@register_form("flatten")
class Flatten(Layer):
    """``(batch, H, W, C)`` to ``(batch, H W C)``, C order (channels last); features pass."""

    mixes = False
    needs_size = False
    reads = ("features", "image")

    def output_shape(self, shape):
        return Shape("features", (int(np.prod(shape.dims)),))

    def init_params(self, rng):
        pass

    def build(self, x, lengths=None, impl=None):
        flat = x if x.ndim == 2 else x.reshape((x.shape[0], self.out_shape.width))
        return self.finish(flat)
