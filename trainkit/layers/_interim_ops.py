"""Interim versions of the issue-17 ops (contract.md), until ``trainkit.ops`` has them.

Used only when ``trainkit.ops.conv``, ``ops.norm`` or ``ops.attention`` is
missing; the layers import the ops modules first.
"""

import numpy as np
import pytensor.tensor as pt

NEG = -1e9


def _pad_time(x, left, right):
    if not left and not right:
        return x
    shape = (x.shape[0], x.shape[1] + left + right, x.shape[2])
    out = pt.zeros(shape, dtype=x.dtype)
    return pt.set_subtensor(out[:, left : left + x.shape[1]], x)


def conv1d(x, w, b, stride=1, padding="valid", dilation=1):
    K = w.type.shape[0]
    span = dilation * (K - 1)
    left, right = {"valid": (0, 0), "same": (span // 2, span - span // 2), "causal": (span, 0)}[
        padding
    ]
    xp = _pad_time(x, left, right)
    T = xp.shape[1] - span
    out = None
    for k in range(K):
        tap = xp[:, k * dilation : k * dilation + T : stride] @ w[k]
        out = tap if out is None else out + tap
    return out if b is None else out + b


def conv2d(x, w, b, stride=(1, 1), padding="valid"):
    kh, kw = w.type.shape[0], w.type.shape[1]
    if padding == "same":
        ph, pw = kh - 1, kw - 1
        shape = (x.shape[0], x.shape[1] + ph, x.shape[2] + pw, x.shape[3])
        xp = pt.zeros(shape, dtype=x.dtype)
        xp = pt.set_subtensor(
            xp[:, ph // 2 : ph // 2 + x.shape[1], pw // 2 : pw // 2 + x.shape[2]], x
        )
    else:
        xp = x
    H = xp.shape[1] - kh + 1
    W = xp.shape[2] - kw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, i : i + H : stride[0], j : j + W : stride[1]] @ w[i, j]
            out = tap if out is None else out + tap
    return out if b is None else out + b


def pool1d(x, pool, mode):
    n = (x.shape[1] // pool) * pool
    views = [x[:, k:n:pool] for k in range(pool)]
    if mode == "max":
        out = views[0]
        for v in views[1:]:
            out = pt.maximum(out, v)
        return out
    return sum(views[1:], views[0]) / np.asarray(pool, x.dtype)


def pool2d(x, pool, mode):
    ph, pw = pool
    h, w = (x.shape[1] // ph) * ph, (x.shape[2] // pw) * pw
    views = [x[:, i:h:ph, j:w:pw] for i in range(ph) for j in range(pw)]
    if mode == "max":
        out = views[0]
        for v in views[1:]:
            out = pt.maximum(out, v)
        return out
    return sum(views[1:], views[0]) / np.asarray(ph * pw, x.dtype)


def global_pool(x, mode, mask=None):
    axes = (1,) if x.ndim == 3 else (1, 2)
    if mask is None:
        return pt.max(x, axis=axes) if mode == "max" else pt.mean(x, axis=axes)
    m = mask[:, :, None]
    if mode == "max":
        low = pt.min(x) - np.asarray(1, x.dtype)
        best = pt.max(pt.switch(m > 0, x, low), axis=1)
        return pt.switch(pt.sum(m, axis=1) > 0, best, pt.zeros_like(best))
    return pt.sum(x * m, axis=1) / pt.maximum(pt.sum(m, axis=1), np.asarray(1, x.dtype))


def layer_norm(x, g, b, eps=1e-5):
    mean = pt.mean(x, axis=-1, keepdims=True)
    var = pt.mean((x - mean) ** 2, axis=-1, keepdims=True)
    norm = (x - mean) / pt.sqrt(var + np.asarray(eps, x.dtype))
    return norm, norm * g + b


def batch_norm_train(x, g, b, eps=1e-5, mask=None):
    axes = tuple(range(x.ndim - 1))
    if mask is None:
        count = pt.prod([x.shape[a] for a in axes]).astype(x.dtype)
        mean = pt.sum(x, axis=axes) / count
        sq = pt.sum((x - mean) ** 2, axis=axes)
    else:
        m = mask[:, :, None]
        count = pt.sum(mask)
        mean = pt.sum(x * m, axis=axes) / count
        sq = pt.sum(((x - mean) ** 2) * m, axis=axes)
    var = sq / count
    norm = (x - mean) / pt.sqrt(var + np.asarray(eps, x.dtype))
    unbiased = sq / pt.maximum(count - np.asarray(1, x.dtype), np.asarray(1, x.dtype))
    return norm, norm * g + b, mean, unbiased


def batch_norm_infer(x, g, b, running_mean, running_var, eps=1e-5):
    norm = (x - running_mean) / pt.sqrt(running_var + np.asarray(eps, x.dtype))
    return norm, norm * g + b


def running_update(running, batch_stat, momentum=0.1):
    m = np.asarray(momentum, running.dtype)
    return (np.asarray(1, running.dtype) - m) * running + m * batch_stat


def multi_head_attention(x, wq, bq, wk, bk, wv, bv, wo, bo, heads, mask=None, causal=False):
    D = wq.type.shape[1]
    d = D // heads
    B, T = x.shape[0], x.shape[1]

    def split(z):
        return z.reshape((B, T, heads, d)).dimshuffle(0, 2, 1, 3)

    q, k, v = split(x @ wq + bq), split(x @ wk + bk), split(x @ wv + bv)
    scores = (q @ k.dimshuffle(0, 1, 3, 2)) / np.asarray(np.sqrt(d), x.dtype)
    allowed = None
    if mask is not None:
        allowed = mask[:, None, None, :] > 0
    if causal:
        steps = pt.cumsum(pt.ones_like(x[0, :, 0], dtype="int32"), axis=0)
        later = steps[None, :] <= steps[:, None]
        allowed = later[None, None] if allowed is None else pt.and_(allowed, later[None, None])
    if allowed is not None:
        scores = pt.switch(allowed, scores, np.asarray(NEG, x.dtype))
    scores = scores - pt.max(scores, axis=-1, keepdims=True)
    e = pt.exp(scores)
    att = e / pt.sum(e, axis=-1, keepdims=True)
    out = (att @ v).dimshuffle(0, 2, 1, 3).reshape((B, T, D))
    return out @ wo + bo
