r"""Multi-head scaled dot-product self-attention over the time axis.

``dict(form='attention', size=D, heads=h, causal=False)`` (``size``
defaults to the input's width):

.. math::
    Q = x W_q + b_q,\; K = x W_k + b_k,\; V = x W_v + b_v, \qquad
    \text{head}_i = \text{softmax}\!\left(\frac{Q_i K_i^T}{\sqrt{D/h}} + M\right) V_i, \qquad
    \text{pre} = [\text{head}_1, \dots, \text{head}_h]\, W_o + b_o

with :math:`Q_i` the i-th block of D/h columns, :math:`M` a large negative
number at keys that are padding (lengths) or, with ``causal=True``, later
than the query. Parameters ``LAYER.wq``, ``LAYER.wk``, ``LAYER.wv``
(``n_in x D``), ``LAYER.wo`` (``D x D``), Glorot uniform, and biases
``LAYER.bq``, ``LAYER.bk``, ``LAYER.bv``, ``LAYER.bo`` (zeros); linear
unless given an ``activation``. Attention ignores order: add a ``position``
layer before it.

>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([4, dict(form="position", kind="sine"),
...                           dict(form="attention", heads=2), 1])
>>> net.predict(np.zeros((2, 5, 4), "float32")).shape
(2, 5, 1)
"""

from collections import OrderedDict

import numpy as np

from regularizers.errors import InvalidArgument

from .base import Layer, glorot, register_form

__all__ = ["Attention"]


@register_form("attention")
class Attention(Layer):
    """Multi-head self-attention (``torch.nn.functional.scaled_dot_product_attention``)."""

    mixes = False
    sequence_form = True
    reads = ("sequence",)
    needs_size = False
    options = {"heads": 1, "causal": False}
    quiet_options = ("causal",)

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        o = self.config_options
        heads = o["heads"]
        if isinstance(heads, bool) or not isinstance(heads, (int, np.integer)) or heads < 1:
            raise InvalidArgument(self.where, f"heads must be a positive int, got {heads!r}")
        if not isinstance(o["causal"], bool):
            raise InvalidArgument(self.where, f"causal must be True or False, got {o['causal']!r}")

    @property
    def width(self):
        return self.in_shape.width if self.size is None else self.size

    def output_shape(self, shape):
        heads = self.config_options["heads"]
        if self.width % heads:
            raise self.fail(f"size {self.width} is not a multiple of heads={heads}")
        return shape.with_width(self.width)

    def spec(self):
        spec = super().spec()
        spec["size"] = self.size
        return spec

    def param_shapes(self):
        n, d = self.n_in, self.width
        shapes = OrderedDict()
        for k in "qkv":
            shapes[f"{self.name}.w{k}"] = (n, d)
            shapes[f"{self.name}.b{k}"] = (d,)
        shapes[f"{self.name}.wo"] = (d, d)
        shapes[f"{self.name}.bo"] = (d,)
        return shapes

    def init_params(self, rng):
        for name, shape in self.param_shapes().items():
            short = name.split(".")[-1]
            if len(shape) == 2:
                self.add_param(short, glorot(rng, *shape, self.dtype))
            else:
                self.add_param(short, np.zeros(shape, self.dtype))

    def needs_static_time(self, impl=None):
        return True

    def build(self, x, lengths=None, impl=None):
        from ..ops.attention import multi_head_attention

        mask = self.real_steps(x, lengths)
        p = self.p
        pre = multi_head_attention(
            x,
            p("wq"), p("bq"), p("wk"), p("bk"), p("wv"), p("bv"), p("wo"), p("bo"),
            self.config_options["heads"],
            mask=mask,
            causal=self.config_options["causal"],
        )  # fmt: skip
        return self.finish(pre)
