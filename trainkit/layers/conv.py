r"""Convolution and pooling layers over time (sequences) and space (images).

``conv1d``
    ``dict(form='conv1d', size=F, kernel=K, stride=1, padding='valid',
    dilation=1)`` over the time axis; ``LAYER.w`` ``(K, n_in, F)``,
    ``LAYER.b`` ``(F,)``; cross-correlation as ``torch.nn.functional.conv1d``.
    ``padding`` is 'valid' (no padding), 'same' (torch's split) or 'causal'
    (all padding on the left: step t sees steps <= t); both need stride 1.
``conv2d``
    The same keys over channels-last images (``kernel``, ``stride`` an int or
    a pair; 'valid' or 'same'); ``LAYER.w`` ``(kh, kw, n_in, F)``.
``maxpool1d``, ``avgpool1d``, ``maxpool2d``, ``avgpool2d``
    ``pool=`` (an int, or a pair for images); stride = pool; a window
    counts when it lies wholly inside (torch's ``ceil_mode=False``).
``globalmaxpool``, ``globalavgpool``
    Over time for sequences (real steps only when lengths are given), over
    space for images; the output is ``(batch, features)``.

Glorot uniform weights with fan-in ``K n_in`` and fan-out ``K F`` (Keras).
With lengths, padded steps are zeroed before a convolution, so every real
output step equals the layer's output on the unpadded sequence; sequence
lengths are carried through strides and pools (``floor((L - span) / s) + 1``,
``floor(L / p)``).

>>> import numpy as np, trainkit
>>> net = trainkit.Classifier([2, dict(form="conv1d", size=3, kernel=3, stride=2),
...                            dict(form="globalmaxpool"), 4])
>>> [str(layer.out_shape) for layer in net.layers]
['sequence(time/conv3s2, 3)', 'features(3)', 'features(4)']
>>> net.predict(np.zeros((5, 9, 2), "float32")).shape
(5,)
"""

from collections import OrderedDict

import numpy as np

from regularizers.errors import InvalidArgument

from .base import Layer, register_form
from .shapes import Shape

__all__ = ["Conv1d", "Conv2d", "GlobalPool", "Pool1d", "Pool2d"]


def _glorot(rng, shape, n_in, n_out, dtype):
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def _int(where, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgument(where, f"{key} must be a positive int, got {value!r}")
    return int(value)


def _pair(where, key, value):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise InvalidArgument(where, f"{key} must be an int or a pair of ints, got {value!r}")
        return tuple(_int(where, key, v) for v in value)
    v = _int(where, key, value)
    return (v, v)


@register_form("conv1d")
class Conv1d(Layer):
    """1-D convolution over time."""

    sequence_form = True
    reads = ("sequence",)
    options = {"kernel": None, "stride": 1, "padding": "valid", "dilation": 1}
    quiet_options = ("stride", "dilation")

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        o = self.config_options
        where = self.where
        if o["kernel"] is None:
            raise InvalidArgument(where, "a conv1d layer needs kernel= (a positive int)")
        self.kernel = _int(where, "kernel", o["kernel"])
        self.stride = _int(where, "stride", o["stride"])
        self.dilation = _int(where, "dilation", o["dilation"])
        if o["padding"] not in ("valid", "same", "causal"):
            raise InvalidArgument(
                where, f"padding must be 'valid', 'same' or 'causal', got {o['padding']!r}"
            )
        if o["padding"] != "valid" and self.stride != 1:
            raise InvalidArgument(
                where,
                f"padding={o['padding']!r} needs stride 1 (as torch), got stride {self.stride}; "
                "use padding='valid' with a stride",
            )

    def output_shape(self, shape):
        padding = self.config_options["padding"]
        out = shape.with_width(self.size)
        if padding == "valid":
            return out.strided(("conv", self.kernel, self.stride, self.dilation))
        return out

    def window_text(self):
        span = self.dilation * (self.kernel - 1) + 1
        return f"kernel {self.kernel}" + (
            f" (spanning {span} steps)" if span != self.kernel else ""
        )

    def param_shapes(self):
        return OrderedDict(
            [
                (f"{self.name}.w", (self.kernel, self.n_in, self.size)),
                (f"{self.name}.b", (self.size,)),
            ]
        )

    def init_params(self, rng):
        k = self.kernel
        w = _glorot(rng, (k, self.n_in, self.size), k * self.n_in, k * self.size, self.dtype)
        self.add_param("w", w)
        self.add_param("b", np.zeros(self.size, self.dtype))

    def needs_static_time(self, impl=None):
        return True

    def build(self, x, lengths=None, impl=None):
        from ..ops.conv import conv1d

        if lengths is not None:
            x = x * self.real_steps(x, lengths)[:, :, None]
        o = self.config_options
        pre = conv1d(x, self.p("w"), self.p("b"), self.stride, o["padding"], self.dilation)
        return self.finish(pre)


@register_form("conv2d")
class Conv2d(Layer):
    """2-D convolution over channels-last images."""

    reads = ("image",)
    options = {"kernel": None, "stride": 1, "padding": "valid"}
    quiet_options = ("stride",)

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        o = self.config_options
        if o["kernel"] is None:
            raise InvalidArgument(self.where, "a conv2d layer needs kernel= (an int or a pair)")
        self.kernel = _pair(self.where, "kernel", o["kernel"])
        self.stride = _pair(self.where, "stride", o["stride"])
        if o["padding"] not in ("valid", "same"):
            raise InvalidArgument(
                self.where, f"padding must be 'valid' or 'same', got {o['padding']!r}"
            )
        if o["padding"] == "same" and self.stride != (1, 1):
            raise InvalidArgument(
                self.where, f"padding='same' needs stride 1 (as torch), got {o['stride']!r}"
            )

    def output_shape(self, shape):
        h, w, _ = shape.dims
        if self.config_options["padding"] == "same":
            return Shape("image", (h, w, self.size))
        (kh, kw), (sh, sw) = self.kernel, self.stride
        if kh > h or kw > w:
            raise self.fail(
                f"kernel {kh}x{kw} is larger than its {h}x{w} input {shape}; use a smaller "
                "kernel or padding='same'"
            )
        return Shape("image", ((h - kh) // sh + 1, (w - kw) // sw + 1, self.size))

    def param_shapes(self):
        kh, kw = self.kernel
        return OrderedDict(
            [
                (f"{self.name}.w", (kh, kw, self.n_in, self.size)),
                (f"{self.name}.b", (self.size,)),
            ]
        )

    def init_params(self, rng):
        kh, kw = self.kernel
        area = kh * kw
        w = _glorot(
            rng, (kh, kw, self.n_in, self.size), area * self.n_in, area * self.size, self.dtype
        )
        self.add_param("w", w)
        self.add_param("b", np.zeros(self.size, self.dtype))

    def build(self, x, lengths=None, impl=None):
        from ..ops.conv import conv2d

        pre = conv2d(x, self.p("w"), self.p("b"), self.stride, self.config_options["padding"])
        return self.finish(pre)


class Pool1d(Layer):
    mixes = False
    sequence_form = True
    reads = ("sequence",)
    needs_size = False
    options = {"pool": None}
    mode = None

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        if self.config_options["pool"] is None:
            raise InvalidArgument(self.where, f"a {self.form} layer needs pool= (a positive int)")
        self.pool = _int(self.where, "pool", self.config_options["pool"])

    def output_shape(self, shape):
        return shape.strided(("pool", self.pool))

    def window_text(self):
        return f"pool {self.pool}"

    def needs_static_time(self, impl=None):
        return True

    def build(self, x, lengths=None, impl=None):
        from ..ops.conv import pool1d

        return self.finish(pool1d(x, self.pool, self.mode))


@register_form("maxpool1d")
class MaxPool1d(Pool1d):
    """Maximum over windows of ``pool`` steps (stride ``pool``)."""

    mode = "max"


@register_form("avgpool1d")
class AvgPool1d(Pool1d):
    """Mean over windows of ``pool`` steps (stride ``pool``)."""

    mode = "avg"


class Pool2d(Layer):
    mixes = False
    reads = ("image",)
    needs_size = False
    options = {"pool": None}
    mode = None

    def __init__(self, name, size, n_in, activation, dtype, **options):
        super().__init__(name, size, n_in, activation, dtype, **options)
        if self.config_options["pool"] is None:
            raise InvalidArgument(self.where, f"a {self.form} layer needs pool= (an int or a pair)")
        self.pool = _pair(self.where, "pool", self.config_options["pool"])

    def output_shape(self, shape):
        h, w, c = shape.dims
        ph, pw = self.pool
        if ph > h or pw > w:
            raise self.fail(f"pool {ph}x{pw} is larger than its {h}x{w} input {shape}")
        return Shape("image", (h // ph, w // pw, c))

    def build(self, x, lengths=None, impl=None):
        from ..ops.conv import pool2d

        return self.finish(pool2d(x, self.pool, self.mode))


@register_form("maxpool2d")
class MaxPool2d(Pool2d):
    """Maximum over ``pool`` windows of an image (stride ``pool``)."""

    mode = "max"


@register_form("avgpool2d")
class AvgPool2d(Pool2d):
    """Mean over ``pool`` windows of an image (stride ``pool``)."""

    mode = "avg"


class GlobalPool(Layer):
    """Max or mean over time (real steps only with lengths) or over space."""

    mixes = False
    reads = ("sequence", "image")
    needs_size = False
    mode = None

    def output_shape(self, shape):
        return Shape("features", (shape.width,))

    def build(self, x, lengths=None, impl=None):
        from ..ops.conv import global_pool

        mask = self.real_steps(x, lengths)
        return self.finish(global_pool(x, self.mode, mask=mask))


@register_form("globalmaxpool")
class GlobalMaxPool(GlobalPool):
    """Maximum over time (real steps) or space."""

    mode = "max"


@register_form("globalavgpool")
class GlobalAvgPool(GlobalPool):
    """Mean over time (real steps) or space."""

    mode = "avg"
