r"""Convolution and pooling over time (``(batch, time, features)``) and images (channels last).

Every function here is plain PyTensor built from static slices and one
matrix product (im2col), so the same graph compiles on JAX, Numba and
``FAST_COMPILE``, in float32 and float64, and creates no parameters.

A 1-D convolution is a cross-correlation, as ``torch.nn.functional.conv1d``
with its input transposed to ``(batch, channels, time)``:

.. math:: y_{b,t,f} = b_f + \sum_{k<K} \sum_{c} x_{b,\, t s + k d,\, c}\, w_{k,c,f}

with stride :math:`s`, dilation :math:`d` and :math:`x` padded along time as
``padding`` says. Under JAX the time (and image) axes must have a static
length (``pt.specify_shape(x, (None, T, F))``), as for scan; batch may stay
dynamic.

>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> x = pt.tensor("x", shape=(None, 5, 1))
>>> w = pt.constant(np.ones((2, 1, 1), x.dtype))
>>> f = pytensor.function([x], conv1d(x, w, None)[..., 0])
>>> f(np.arange(5, dtype=x.dtype).reshape(1, 5, 1))
array([[1., 3., 5., 7.]]...)
>>> conv1d_length(5, 2), conv1d_length(5, 3, padding="same"), pool1d_length(5, 2)
(4, 5, 2)
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable

from regularizers.errors import InvalidArgument, unknown

__all__ = [
    "conv1d",
    "conv1d_length",
    "conv2d",
    "global_pool",
    "pool1d",
    "pool1d_length",
    "pool2d",
]

PADDINGS_1D = ("valid", "same", "causal")
PADDINGS_2D = ("valid", "same")
POOL_MODES = ("max", "avg")


def _positive(argument, value):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgument(argument, f"must be a positive int, got {value!r}", value=value)
    return int(value)


def _pair(argument, value):
    """``value`` as a pair of positive ints (an int means the same on both axes)."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise InvalidArgument(
                argument, f"must be an int or a pair of ints, got {value!r}", value=value
            )
        return tuple(_positive(argument, v) for v in value)
    v = _positive(argument, value)
    return v, v


def _choice(argument, value, allowed):
    if value not in allowed:
        raise InvalidArgument(
            argument, unknown(argument, value, allowed, kind="value").split(": ", 1)[1], value
        )
    return value


def static_dim(var, axis, what):
    """The length of ``var`` along ``axis`` as a Python int: from its type, or from a
    shared variable's value (a parameter's shape does not change); else one clear error."""
    n = var.type.shape[axis]
    if n is None and isinstance(var, SharedVariable):
        n = var.get_value(borrow=True).shape[axis]
    if n is None:
        raise InvalidArgument(
            what,
            f"must have a static length along axis {axis} (a shared variable, or a "
            f"tensor with a known shape), got {var.type}",
        )
    return int(n)


def static_shape(var):
    """``var`` with its full shape in its type when it is a shared variable (a parameter).

    A shared variable's type has no static shape; without one, JAX cannot
    trace the gradient of a concatenation (non-constant split positions) and
    every broadcast with it carries an assertion. None passes through.
    """
    if var is None or not isinstance(var, SharedVariable) or None not in var.type.shape:
        return var
    return pt.specify_shape(var, var.get_value(borrow=True).shape)


def _size(x, axis):
    """The static length of ``x`` along ``axis`` if known, else the symbolic one."""
    n = x.type.shape[axis]
    return int(n) if n is not None else x.shape[axis]


def _pad(x, axis, before, after):
    """``x`` with ``before``/``after`` zeros along ``axis`` (static pad widths).

    Concatenated zeros, not ``pt.pad`` (which casts to floatX in PyTensor 3.0.7).
    The zeros are a constant block broadcast against zeros shaped like one
    step of ``x``, so no shape vector is built from the symbolic batch size
    (JAX cannot trace an ``Alloc`` whose shape holds ``x.shape[0]``).
    """
    parts = []
    for width in (before, x, after):
        if isinstance(width, int):
            if width:
                index = [slice(None)] * x.ndim
                index[axis] = 0
                step = pt.expand_dims(pt.zeros_like(x[tuple(index)]), axis)
                block = [1] * x.ndim
                block[axis] = width
                parts.append(step + pt.constant(np.zeros(block, dtype=x.dtype)))
        else:
            parts.append(x)
    return parts[0] if len(parts) == 1 else pt.concatenate(parts, axis=axis)


def _project(cols, w, batch):
    """``cols @ w`` for ``cols`` of shape ``(batch, *steps, n)`` and a matrix ``w`` ``(n, F)``.

    The product's batch size is said to be ``batch`` (the input's), an
    array's shape JAX knows while tracing; otherwise PyTensor infers it by
    shape arithmetic, which JAX cannot use as a shape in the gradient
    ("Shapes must be concrete"). No ``-1`` reshapes either, for the same reason.
    """
    steps = tuple(_size(cols, i) for i in range(1, cols.ndim - 1))
    f = static_dim(w, 1, "w")
    return pt.specify_shape(pt.matmul(cols, w), (batch, *steps, f))


def _pad_widths(padding, kernel, dilation, stride, argument):
    """(left, right) zero padding of one axis for ``padding`` (torch's split for 'same')."""
    total = (kernel - 1) * dilation
    if padding == "valid":
        return 0, 0
    if stride != 1:
        raise InvalidArgument(
            argument,
            f"padding={padding!r} needs stride 1 (as torch), got stride {stride}; "
            "use padding='valid' with a stride",
            value=stride,
        )
    if padding == "causal":
        return total, 0
    return total // 2, total - total // 2


def _taps(x, axis, kernel, dilation, stride):
    """The ``kernel`` strided views of ``x`` along ``axis``, one per kernel tap.

    Tap ``k`` holds steps ``k d + i s`` for every output step ``i``; its stop
    is counted back from the end, so the slices are static whatever the
    length, and all taps have the output's length.
    """
    views = []
    span = (kernel - 1) * dilation
    for k in range(kernel):
        stop = k * dilation - span
        index = [slice(None)] * x.ndim
        index[axis] = slice(k * dilation, stop if stop < 0 else None, stride)
        views.append(x[tuple(index)])
    return views


def conv1d_length(n, kernel, stride=1, padding="valid", dilation=1):
    """Output length of :func:`conv1d` for input length ``n`` (an int or a symbolic int vector).

    .. math:: n' = \\max\\left(0, \\left\\lfloor \\frac{n + p - d (K-1) - 1}{s} \\right\\rfloor + 1\\right)

    with :math:`p` the total padding (0 for 'valid', :math:`d(K-1)` for
    'same' and 'causal'), so a length shorter than the receptive field gives 0.
    """
    kernel = _positive("kernel", kernel)
    stride = _positive("stride", stride)
    dilation = _positive("dilation", dilation)
    left, right = _pad_widths(
        _choice("padding", padding, PADDINGS_1D), kernel, dilation, stride, "stride"
    )
    out = (n + left + right - dilation * (kernel - 1) - 1) // stride + 1
    return max(out, 0) if isinstance(n, int | np.integer) else pt.maximum(out, 0)


def conv1d(x, w, b, stride=1, padding="valid", dilation=1):
    """1-D convolution over time (cross-correlation, as ``torch.nn.functional.conv1d``).

    Parameters
    ----------
    x : TensorVariable
        ``(batch, time, n_in)``. Padded steps of shorter sequences should be
        zero, so that a real step sees what torch would see on the sequence
        alone (see :func:`conv1d_length` for the real output length).
    w : TensorVariable
        ``(K, n_in, F)``; ``w[k, c, f]`` is torch's ``weight[f, c, k]``.
    b : TensorVariable or None
        ``(F,)``.
    stride, dilation : int
        Step between outputs and between kernel taps.
    padding : {'valid', 'same', 'causal'}
        'valid' no padding; 'same' (stride 1 only) keeps the length, with
        ``(K-1) d // 2`` zeros on the left and the rest on the right, as torch's
        ``padding='same'``; 'causal' puts all ``(K-1) d`` zeros on the left, so
        output step ``t`` sees input steps ``<= t``.

    Returns
    -------
    TensorVariable
        ``(batch, time_out, F)``.
    """
    stride = _positive("stride", stride)
    dilation = _positive("dilation", dilation)
    padding = _choice("padding", padding, PADDINGS_1D)
    if w.ndim != 3 or x.ndim != 3:
        raise InvalidArgument(
            "conv1d",
            f"needs x (batch, time, n_in) and w (K, n_in, F), got {x.ndim}-d and {w.ndim}-d",
        )
    kernel = static_dim(w, 0, "conv1d: w")
    w, b = static_shape(w), static_shape(b)
    left, right = _pad_widths(padding, kernel, dilation, stride, "stride")
    cols = pt.concatenate(_taps(_pad(x, 1, left, right), 1, kernel, dilation, stride), axis=-1)
    n_in, n_out = static_dim(w, 1, "conv1d: w"), static_dim(w, 2, "conv1d: w")
    out = _project(cols, w.reshape((kernel * n_in, n_out)), x.shape[0])
    return out if b is None else out + b


def conv2d(x, w, b, stride=(1, 1), padding="valid"):
    """2-D convolution over channels-last images (as ``torch.nn.functional.conv2d``, NHWC).

    .. math:: y_{n,i,j,f} = b_f + \\sum_{p<k_h} \\sum_{q<k_w} \\sum_c x_{n,\\, i s_h + p,\\, j s_w + q,\\, c}\\, w_{p,q,c,f}

    Parameters
    ----------
    x : TensorVariable
        ``(batch, H, W, C)``.
    w : TensorVariable
        ``(kh, kw, C, F)``; ``w[p, q, c, f]`` is torch's ``weight[f, c, p, q]``.
    b : TensorVariable or None
        ``(F,)``.
    stride : int or (int, int)
    padding : {'valid', 'same'}
        'same' needs stride 1 and splits the padding as torch does (the
        smaller half on top/left).

    Returns
    -------
    TensorVariable
        ``(batch, H_out, W_out, F)``.
    """
    sh, sw = _pair("stride", stride)
    padding = _choice("padding", padding, PADDINGS_2D)
    if w.ndim != 4 or x.ndim != 4:
        raise InvalidArgument(
            "conv2d",
            f"needs x (batch, H, W, C) and w (kh, kw, C, F), got {x.ndim}-d and {w.ndim}-d",
        )
    kh, kw = static_dim(w, 0, "conv2d: w"), static_dim(w, 1, "conv2d: w")
    w, b = static_shape(w), static_shape(b)
    top, bottom = _pad_widths(padding, kh, 1, max(sh, sw), "stride")
    left, right = _pad_widths(padding, kw, 1, max(sh, sw), "stride")
    x = _pad(_pad(x, 1, top, bottom), 2, left, right)
    taps = [col for row in _taps(x, 1, kh, 1, sh) for col in _taps(row, 2, kw, 1, sw)]
    cols = pt.concatenate(taps, axis=-1)
    n_in, n_out = static_dim(w, 2, "conv2d: w"), static_dim(w, 3, "conv2d: w")
    out = _project(cols, w.reshape((kh * kw * n_in, n_out)), x.shape[0])
    return out if b is None else out + b


def pool1d_length(n, pool):
    """Output length of :func:`pool1d`: :math:`\\lfloor n / p \\rfloor` (an int or a symbolic vector)."""
    return n // _positive("pool", pool)


def _pool(x, pools, mode):
    """Pool ``x`` over windows of ``pools[i]`` steps along axes ``1 .. len(pools)``.

    Each pooled axis of length ``n`` is cropped to ``(n // p) p`` and split
    into ``(n // p, p)`` by one reshape (few ops: quick to compile on Numba),
    then reduced over the window axes.
    """
    shape = [x.shape[0]]
    crop = [slice(None)]
    for axis, p in enumerate(pools, start=1):
        n = _size(x, axis) // p
        crop.append(slice(0, n * p))
        shape += [n, p]
    shape += [_size(x, axis) for axis in range(len(pools) + 1, x.ndim)]
    windows = x[tuple(crop)].reshape(shape)
    axes = tuple(range(2, 2 * len(pools) + 1, 2))
    out = pt.max(windows, axis=axes) if mode == "max" else pt.mean(windows, axis=axes)
    return pt.specify_shape(out, (x.shape[0],) + (None,) * (out.ndim - 1))


def pool1d(x, pool, mode):
    """Max or average pooling over time with stride = ``pool`` (torch's ``ceil_mode=False``).

    .. math:: y_{b,t,f} = \\operatorname{max\\ or\\ mean}_{0 \\le k < p}\\, x_{b,\\, t p + k,\\, f}

    for :math:`t < \\lfloor T/p \\rfloor`; the last ``T mod p`` steps are dropped.
    ``x`` is ``(batch, time, F)``.
    """
    pool = _positive("pool", pool)
    mode = _choice("mode", mode, POOL_MODES)
    return _pool(x, (pool,), mode)


def pool2d(x, pool, mode):
    """Max or average pooling of ``(batch, H, W, C)`` images over ``pool = (ph, pw)`` windows, stride = pool."""
    ph, pw = _pair("pool", pool)
    mode = _choice("mode", mode, POOL_MODES)
    return _pool(x, (ph, pw), mode)


def global_pool(x, mode, mask=None):
    """Max or mean over time (``(batch, time, F)``) or over space (``(batch, H, W, C)``).

    With a ``(batch, time)`` 0/1 ``mask`` only real steps count:

    .. math:: \\bar x_{b,f} = \\frac{\\sum_t m_{bt} x_{btf}}{\\sum_t m_{bt}}, \\qquad
              \\hat x_{b,f} = \\max_{t:\\, m_{bt} = 1} x_{btf}

    and a sequence without any real step gives 0 (not NaN or -inf).

    Returns
    -------
    TensorVariable
        ``(batch, F)``.
    """
    mode = _choice("mode", mode, POOL_MODES)
    if x.ndim not in (3, 4):
        raise InvalidArgument(
            "global_pool", f"needs (batch, time, F) or (batch, H, W, C), got {x.ndim}-d input"
        )
    axes = (1,) if x.ndim == 3 else (1, 2)
    if mask is None:
        return pt.max(x, axis=axes) if mode == "max" else pt.mean(x, axis=axes)
    if x.ndim != 3:
        raise InvalidArgument("global_pool", "a mask applies to (batch, time, F) sequences only")
    m = pt.cast(mask, x.dtype)
    real = pt.sum(m, axis=1)[:, None]
    any_real = pt.gt(real, 0)
    if mode == "avg":
        return pt.sum(x * m[:, :, None], axis=1) / pt.switch(any_real, real, pt.ones_like(real))
    lowest = np.asarray(np.finfo(x.dtype).min, dtype=x.dtype)
    top = pt.max(pt.switch(pt.gt(m, 0)[:, :, None], x, lowest), axis=1)
    return pt.switch(any_real, top, pt.zeros_like(top))
