r"""Multi-head scaled dot-product self-attention, and sinusoidal position encodings.

Plain PyTensor (JAX, Numba, ``FAST_COMPILE``; float32 and float64); no
parameters are created here. For each head :math:`h` of width
:math:`d = D / H`, with :math:`Q = x W_q + b_q` (likewise :math:`K`,
:math:`V`) split into heads along the feature axis:

.. math:: A_h = \operatorname{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt d} + M\right) V_h,
          \qquad y = [A_1, \dots, A_H]\, W_o + b_o

where :math:`M_{ts}` is 0 where query step :math:`t` may see key step
:math:`s` and a large negative number elsewhere (key :math:`s` padded, or
:math:`s > t` when causal). Masked scores are replaced, not added to, so a
row with no visible key (a fully padded sequence) averages every value
uniformly instead of giving NaN as torch's ``scaled_dot_product_attention``
does. Everywhere else it matches torch.

>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> sinusoidal_positions(3, 4, "float64").round(3)
array([[ 0.   ,  1.   ,  0.   ,  1.   ],
       [ 0.841,  0.54 ,  0.01 ,  1.   ],
       [ 0.909, -0.416,  0.02 ,  1.   ]])
>>> x = pt.tensor("x", shape=(None, 3, 2))
>>> eye = pt.constant(np.eye(2, dtype=x.dtype))
>>> zero = pt.constant(np.zeros(2, x.dtype))
>>> y = multi_head_attention(x, eye, zero, eye, zero, eye, zero, eye, zero, heads=1, causal=True)
>>> pytensor.function([x], y)(np.ones((1, 3, 2), x.dtype)).shape
(1, 3, 2)
"""

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument

from .conv import static_dim, static_shape

__all__ = ["multi_head_attention", "sinusoidal_positions"]

#: the score given to a key a query may not see (finite: no NaN for a fully masked row)
MASKED_SCORE = -1e9


def _steps(x):
    """1, 2, ..., T along ``x``'s time axis: a numpy constant if T is static, else a cumsum."""
    t = x.type.shape[1]
    if t is not None:
        return pt.constant(np.arange(1, t + 1, dtype="int64"))
    return pt.cumsum(pt.ones_like(x[0, :, 0], dtype="int64"))  # not arange (JAX, n >= 128)


def _visible(x, mask, causal):
    """``(batch or 1, T, T)`` boolean: query ``t`` (rows) may see key ``s`` (columns), or None."""
    visible = None
    if causal:
        steps = _steps(x)
        visible = pt.ge(steps[:, None], steps[None, :])[None, :, :]
    if mask is not None:
        keys = pt.gt(mask, 0)[:, None, :]
        visible = keys if visible is None else pt.and_(visible, keys)
    return visible


def multi_head_attention(x, wq, bq, wk, bk, wv, bv, wo, bo, heads, mask=None, causal=False):
    """Multi-head scaled dot-product self-attention over the time axis.

    Parameters
    ----------
    x : TensorVariable
        ``(batch, time, n_in)``.
    wq, wk, wv : TensorVariable
        ``(n_in, D)`` input projections; ``bq``, ``bk``, ``bv`` ``(D,)``.
    wo : TensorVariable
        ``(D, D)`` output projection; ``bo`` ``(D,)``.
    heads : int
        Number of heads; ``D`` must be a multiple (head ``h`` uses features
        ``h D/H .. (h+1) D/H - 1``, as torch's ``nn.MultiheadAttention``).
    mask : TensorVariable, optional
        ``(batch, time)`` 0/1: keys at padded steps (0) are seen by no query.
    causal : bool
        Query step ``t`` sees key steps ``<= t`` only.

    Returns
    -------
    TensorVariable
        ``(batch, time, D)``.
    """
    if isinstance(heads, bool) or not isinstance(heads, int | np.integer) or heads < 1:
        raise InvalidArgument("heads", f"must be a positive int, got {heads!r}", value=heads)
    width = static_dim(wq, 1, "multi_head_attention: wq")
    if width % heads:
        raise InvalidArgument(
            "heads",
            f"the width {width} must be a multiple of heads, got heads={heads}; "
            f"divisors of {width}: {', '.join(str(h) for h in range(1, width + 1) if width % h == 0)}",
            value=heads,
        )
    if x.ndim != 3:
        raise InvalidArgument(
            "multi_head_attention", f"needs (batch, time, n_in), got {x.ndim}-d input"
        )
    d = width // heads
    wq, bq, wk, bk, wv, bv, wo, bo = map(static_shape, (wq, bq, wk, bk, wv, bv, wo, bo))
    q, k, v = (pt.matmul(x, w) + b for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    scale = pt.constant(np.asarray(1.0 / np.sqrt(d), dtype=x.dtype))
    visible = _visible(x, mask, bool(causal))
    masked = pt.constant(np.asarray(MASKED_SCORE, dtype=x.dtype))
    heads_out = []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        qh, kh, vh = q[:, :, part], k[:, :, part], v[:, :, part]
        scores = pt.matmul(qh, kh.transpose(0, 2, 1)) * scale
        if visible is not None:
            scores = pt.switch(visible, scores, masked)
        weights = pt.special.softmax(scores, axis=-1)
        heads_out.append(pt.matmul(weights, vh))
    joined = heads_out[0] if heads == 1 else pt.concatenate(heads_out, axis=-1)
    return pt.matmul(joined, wo) + bo


def sinusoidal_positions(length, width, dtype):
    r"""The fixed position encoding of Vaswani et al. (2017), a numpy ``(length, width)`` array.

    .. math:: P_{t, 2i} = \sin\!\left(t / 10000^{2i/D}\right), \qquad
              P_{t, 2i+1} = \cos\!\left(t / 10000^{2i/D}\right)

    for steps :math:`t = 0 .. length-1` and width :math:`D` (an odd width
    ends with a sine column).
    """
    for name, value in (("length", length), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InvalidArgument(name, f"must be a positive int, got {value!r}", value=value)
    t = np.arange(length, dtype=np.float64)[:, None]
    pairs = np.arange(0, width, 2, dtype=np.float64)
    angles = t / np.power(10000.0, pairs / width)
    out = np.zeros((length, width))
    out[:, 0::2] = np.sin(angles)
    out[:, 1::2] = np.cos(angles[:, : width // 2])
    return out.astype(dtype)
