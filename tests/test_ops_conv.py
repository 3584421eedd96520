"""Convolution and pooling ops against loops in numpy and against torch, float64, forward and gradient.

All cases compile into one function per mode (see ``ops_check``); numpy
gradients are the adjoints written out (scatter of the projection).
"""

import functools
import warnings

import numpy as np
import pytensor.tensor as pt
import pytest
from ops_check import Case, run

from regularizers.errors import InvalidArgument
from trainkit.ops import conv

RNG = np.random.default_rng(17)
B = 3


def normal(*shape):
    return RNG.normal(size=shape)


MASK = np.array([[1] * 9, [1] * 4 + [0] * 5, [0] * 9], "float64")  # lengths 9, 4, 0

# name -> (kwargs, K, n_in, F, T) for conv1d
CONV1D = {
    "c1_valid": (dict(stride=2, dilation=2), 3, 2, 4, 11),
    "c1_same": (dict(padding="same"), 4, 3, 2, 7),
    "c1_causal": (dict(padding="causal", dilation=2), 3, 2, 3, 8),
}
# name -> (stride, padding, (kh, kw), C, F, (H, W))
CONV2D = {
    "c2_valid": ((2, 1), "valid", (3, 2), 2, 3, (7, 5)),
    "c2_same": (1, "same", (3, 4), 2, 2, (5, 6)),
}
# name -> (function, pool, mode, input shape)
POOLS = {
    "p1_max": (conv.pool1d, 3, "max", (B, 8, 2)),
    "p1_avg": (conv.pool1d, 2, "avg", (B, 7, 3)),
    "p2_max": (conv.pool2d, (2, 3), "max", (B, 5, 7, 2)),
    "p2_avg": (conv.pool2d, (2, 2), "avg", (B, 4, 5, 1)),
}
GLOBALS = {
    "g_max_mask": ("max", (B, 9, 2), True),
    "g_avg_mask": ("avg", (B, 9, 2), True),
    "g_max_seq": ("max", (B, 6, 2), False),
    "g_max_img": ("max", (B, 4, 3, 2), False),
    "g_avg_img": ("avg", (B, 4, 3, 2), False),
}


def _cases(dynamic=False):
    cases = []
    for name, (kw, K, C, F, T) in CONV1D.items():
        inputs = dict(x=normal(B, T, C), w=normal(K, C, F), b=normal(F))
        t_out = conv.conv1d_length(T, K, **kw)
        build = functools.partial(lambda x, w, b, kw: [conv.conv1d(x, w, b, **kw)], kw=kw)
        cases.append(Case(name, inputs, build, [(B, t_out, F)], ("x",) if dynamic else ()))
    for name, (stride, padding, (kh, kw), C, F, (H, W)) in CONV2D.items():
        inputs = dict(x=normal(B, H, W, C), w=normal(kh, kw, C, F), b=normal(F))
        shape = np_conv2d(inputs["x"], inputs["w"], inputs["b"], stride, padding).shape
        build = functools.partial(
            lambda x, w, b, s, p: [conv.conv2d(x, w, b, stride=s, padding=p)], s=stride, p=padding
        )
        cases.append(Case(name, inputs, build, [shape], ("x",) if dynamic else ()))
    for name, (fn, pool, mode, shape) in POOLS.items():
        inputs = dict(x=normal(*shape))
        out_shape = np_pool(inputs["x"], pool, mode)[0].shape
        build = functools.partial(lambda x, fn, p, m: [fn(x, p, m)], fn=fn, p=pool, m=mode)
        cases.append(Case(name, inputs, build, [out_shape], ("x",) if dynamic else ()))
    for name, (mode, shape, masked) in GLOBALS.items():
        inputs = dict(x=normal(*shape))
        if masked:
            inputs["mask"] = MASK
            build = functools.partial(lambda x, mask, m: [conv.global_pool(x, m, mask)], m=mode)
        else:
            build = functools.partial(lambda x, m: [conv.global_pool(x, m)], m=mode)
        cases.append(Case(name, inputs, build, [(B, shape[-1])], ("x",) if dynamic else ()))
    return cases


CASES = []  # filled on first use, after the numpy references below are defined


# -- numpy references: loops and their adjoints -----------------------------------------


def np_conv1d(x, w, b, r=None, stride=1, padding="valid", dilation=1):
    """Output, and with projection ``r`` the gradients (x, w, b) of sum(out * r)."""
    K = w.shape[0]
    total = (K - 1) * dilation
    left = {"valid": 0, "same": total // 2, "causal": total}[padding]
    right = {"valid": 0, "same": total - total // 2, "causal": 0}[padding]
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    t_out = (xp.shape[1] - total - 1) // stride + 1
    out = np.zeros((x.shape[0], t_out, w.shape[2])) + b
    for i in range(t_out):
        for k in range(K):
            out[:, i] += xp[:, i * stride + k * dilation] @ w[k]
    if r is None:
        return out
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(t_out):
        for k in range(K):
            gxp[:, i * stride + k * dilation] += r[:, i] @ w[k].T
            gw[k] += xp[:, i * stride + k * dilation].T @ r[:, i]
    return out, (gxp[:, left : left + x.shape[1]], gw, r.sum(axis=(0, 1)))


def np_conv2d(x, w, b, stride, padding, r=None):
    kh, kw = w.shape[:2]
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    top, left = ((kh - 1) // 2, (kw - 1) // 2) if padding == "same" else (0, 0)
    bottom, right = ((kh - 1) - top, (kw - 1) - left) if padding == "same" else (0, 0)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho, wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3])) + b
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(ho):
        for j in range(wo):
            for p in range(kh):
                for q in range(kw):
                    patch = xp[:, i * sh + p, j * sw + q]
                    out[:, i, j] += patch @ w[p, q]
                    if r is not None:
                        gxp[:, i * sh + p, j * sw + q] += r[:, i, j] @ w[p, q].T
                        gw[p, q] += patch.T @ r[:, i, j]
    if r is None:
        return out
    grads = gxp[:, top : top + x.shape[1], left : left + x.shape[2]], gw, r.sum(axis=(0, 1, 2))
    return out, grads


def np_pool(x, pool, mode, r=None):
    """Pooling over the time axis, or (pool a pair) over both image axes, with its adjoint."""
    pools = (pool,) if isinstance(pool, int) else pool
    windows = [n // p for n, p in zip(x.shape[1:], pools, strict=False)]
    out = np.zeros((x.shape[0], *windows, x.shape[-1]))
    gx = np.zeros_like(x)
    for index in np.ndindex(*windows):
        sl = tuple(slice(i * p, (i + 1) * p) for i, p in zip(index, pools, strict=True))
        block = x[(slice(None), *sl)].reshape(x.shape[0], -1, x.shape[-1])
        if mode == "max":
            out[(slice(None), *index)] = block.max(axis=1)
        else:
            out[(slice(None), *index)] = block.mean(axis=1)
        if r is not None:
            rr = r[(slice(None), *index)]
            if mode == "max":
                hit = block == block.max(axis=1, keepdims=True)
                g = hit * rr[:, None, :]
            else:
                g = np.broadcast_to(rr[:, None, :] / block.shape[1], block.shape)
            gx[(slice(None), *sl)] += g.reshape(x[(slice(None), *sl)].shape)
    return out, gx


def np_global(x, mode, mask, r):
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    m = np.ones(flat.shape[:2]) if mask is None else mask
    out, g = np.zeros((x.shape[0], x.shape[-1])), np.zeros_like(flat)
    for n in range(len(flat)):
        real = flat[n][m[n] > 0]
        if len(real) == 0:
            continue
        if mode == "max":
            out[n] = real.max(axis=0)
            g[n] = (flat[n] == out[n]) * (m[n] > 0)[:, None] * r[n]
        else:
            out[n] = real.mean(axis=0)
            g[n] = (m[n] > 0)[:, None] * r[n] / len(real)
    return out, g.reshape(x.shape)


def numpy_reference(case, r):
    v = case.inputs
    if case.name in CONV1D:
        out, (gx, gw, gb) = np_conv1d(v["x"], v["w"], v["b"], r, **CONV1D[case.name][0])
        return out, dict(x=gx, w=gw, b=gb)
    if case.name in CONV2D:
        stride, padding = CONV2D[case.name][:2]
        out, (gx, gw, gb) = np_conv2d(v["x"], v["w"], v["b"], stride, padding, r)
        return out, dict(x=gx, w=gw, b=gb)
    if case.name in POOLS:
        out, gx = np_pool(v["x"], *POOLS[case.name][1:3], r)
        return out, dict(x=gx)
    mode, _, masked = GLOBALS[case.name]
    out, gx = np_global(v["x"], mode, v["mask"] if masked else None, r)
    return out, dict(x=gx)


MODES = ["FAST_COMPILE", "JAX", pytest.param("NUMBA", marks=pytest.mark.numba)]


#: Numba's cold compile of every case takes minutes on a 2-core box: it checks one of each kind
NUMBA_CASES = ("c1_same", "c2_valid", "p1_max", "g_max_mask", "g_avg_mask")


@functools.cache
def compiled(mode):
    if not CASES:
        CASES.extend(_cases())
    return run(cases_for(mode), mode)


def cases_for(mode):
    return [c for c in CASES if mode != "NUMBA" or c.name in NUMBA_CASES]


@pytest.mark.parametrize("mode", MODES)
def test_forward_and_gradients_match_numpy(mode):
    got, proj = compiled(mode)
    for case in cases_for(mode):
        out, grads = numpy_reference(case, proj[case.name][0])
        np.testing.assert_allclose(
            got[case.name][0][0], out, rtol=1e-10, atol=1e-10, err_msg=case.name
        )
        for k, g in grads.items():
            np.testing.assert_allclose(
                got[case.name][1][k], g, rtol=1e-10, atol=1e-10, err_msg=f"{case.name} d{k}"
            )


def torch_reference(torch, case, r):
    F = torch.nn.functional
    v = {k: torch.tensor(a, requires_grad=k != "mask") for k, a in case.inputs.items()}
    x = v["x"]
    if case.name in CONV1D:
        kw, K = CONV1D[case.name][:2]
        xt = x.transpose(1, 2)
        padding, dilation = kw.get("padding", "valid"), kw.get("dilation", 1)
        if padding == "causal":
            xt, padding = F.pad(xt, ((K - 1) * dilation, 0)), "valid"
        wt = v["w"].permute(2, 1, 0)
        with warnings.catch_warnings():  # torch warns that even kernels with 'same' copy the input
            warnings.simplefilter("ignore", UserWarning)
            out = F.conv1d(
                xt, wt, v["b"], stride=kw.get("stride", 1), padding=padding, dilation=dilation
            )
        out = out.transpose(1, 2)
    elif case.name in CONV2D:
        stride, padding = CONV2D[case.name][:2]
        wt = v["w"].permute(3, 2, 0, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = F.conv2d(x.permute(0, 3, 1, 2), wt, v["b"], stride=stride, padding=padding)
        out = out.permute(0, 2, 3, 1)
    elif case.name in POOLS:
        fn, pool, mode = POOLS[case.name][:3]
        if fn is conv.pool1d:
            torch_fn = F.max_pool1d if mode == "max" else F.avg_pool1d
            out = torch_fn(x.transpose(1, 2), pool).transpose(1, 2)
        else:
            torch_fn = F.max_pool2d if mode == "max" else F.avg_pool2d
            out = torch_fn(x.permute(0, 3, 1, 2), pool).permute(0, 2, 3, 1)
    else:
        mode, _, masked = GLOBALS[case.name]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        m = v["mask"] if masked else torch.ones(flat.shape[:2], dtype=flat.dtype)
        real = (m > 0)[:, :, None]
        if mode == "max":
            top = torch.where(real, flat, torch.tensor(-torch.inf, dtype=flat.dtype)).amax(dim=1)
            out = torch.where(real.any(dim=1), top, torch.zeros_like(top))
        else:
            out = (flat * m[:, :, None]).sum(dim=1) / m.sum(dim=1).clamp(min=1)[:, None]
    (out * torch.tensor(r)).sum().backward()
    grads = {k: t.grad.numpy() for k, t in v.items() if k != "mask"}
    return out.detach().numpy(), grads


@pytest.mark.parametrize("mode", MODES)
def test_forward_and_gradients_match_torch(mode):
    torch = pytest.importorskip("torch")
    got, proj = compiled(mode)
    for case in cases_for(mode):
        out, grads = torch_reference(torch, case, proj[case.name][0])
        np.testing.assert_allclose(
            got[case.name][0][0], out, rtol=1e-10, atol=1e-10, err_msg=case.name
        )
        for k, g in grads.items():
            np.testing.assert_allclose(
                got[case.name][1][k], g, rtol=1e-10, atol=1e-10, err_msg=f"{case.name} d{k}"
            )


@pytest.mark.parametrize("mode", ["FAST_COMPILE"])
def test_dynamic_lengths_give_the_same_numbers(mode):
    """With the time/image axes unknown to the graph (fine off JAX) the numbers are the same."""
    ref, _ = compiled("FAST_COMPILE")
    cases = _cases(dynamic=True)
    for case, static in zip(cases, CASES, strict=True):
        case.inputs = static.inputs
    got, _ = run(cases, mode)
    for case in cases:
        for a, b in zip(got[case.name][0], ref[case.name][0], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=case.name)


def test_lengths_follow_the_layers():
    assert conv.conv1d_length(11, 3, stride=2, dilation=2) == 4
    assert conv.conv1d_length(7, 4, padding="same") == 7
    assert conv.conv1d_length(8, 3, padding="causal", dilation=2) == 8
    assert conv.conv1d_length(2, 5) == 0
    assert conv.pool1d_length(7, 2) == 3
    n = pt.ivector("n")
    f = __import__("pytensor").function(
        [n], [conv.conv1d_length(n, 3, stride=2), conv.pool1d_length(n, 3)]
    )
    a, b = f(np.array([0, 2, 3, 9], "int32"))
    np.testing.assert_array_equal(a, [0, 0, 1, 4])
    np.testing.assert_array_equal(b, [0, 0, 1, 3])


def test_float32_stays_float32():
    x = pt.tensor("x", dtype="float32", shape=(None, 6, 3))
    w = pt.tensor("w", dtype="float32", shape=(2, 3, 4))
    b = pt.tensor("b", dtype="float32", shape=(4,))
    m = pt.matrix("m", dtype="float32")
    img = pt.tensor("img", dtype="float32", shape=(None, 4, 4, 3))
    w2 = pt.tensor("w2", dtype="float32", shape=(2, 2, 3, 4))
    outs = [
        conv.conv1d(x, w, b, padding="same"),
        conv.pool1d(x, 2, "avg"),
        conv.global_pool(x, "max", m),
        conv.global_pool(x, "avg", m),
        conv.conv2d(img, w2, b, padding="same"),
        conv.pool2d(img, 2, "avg"),
    ]
    assert [o.dtype for o in outs] == ["float32"] * len(outs)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda x, w: conv.conv1d(x, w, None, padding="sme"),
            r"padding: unknown value 'sme'; choose from causal, same, valid \(closest: same\)",
        ),
        (
            lambda x, w: conv.conv1d(x, w, None, stride=2, padding="same"),
            r"stride: padding='same' needs stride 1",
        ),
        (lambda x, w: conv.conv1d(x, w, None, stride=0), r"stride: must be a positive int, got 0"),
        (
            lambda x, w: conv.pool1d(x, 2, "mean"),
            r"mode: unknown value 'mean'; choose from avg, max",
        ),
        (lambda x, w: conv.pool2d(x, (2, 2, 2), "max"), r"pool: must be an int or a pair"),
    ],
)
def test_bad_arguments_fail_with_one_line(call, match):
    x = pt.tensor("x", shape=(None, 6, 3))
    w = pt.tensor("w", shape=(2, 3, 4))
    with pytest.raises(InvalidArgument, match=match):
        call(x, w)


# PyTensor's JAX IncSubtensor hands XLA a float64 scalar under x64 (no float64 in the graph)
@pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")
def test_shared_parameters_train_on_jax():
    """Parameters are shared variables without static shapes in their type: the ops pin them,
    so JAX can trace the gradient (a concatenation's split needs constant positions)."""
    import jax
    import pytensor

    from trainkit.ops import attention, norm

    rng = np.random.default_rng(2)
    p = {
        k: pytensor.shared(rng.normal(size=s).astype("float32"), name=k)
        for k, s in dict(w=(3, 4, 6), b=(6,), w2=(2, 2, 6, 3), wq=(6, 6), bq=(6,), g=(6,)).items()
    }
    x = pt.tensor("x", dtype="float32", shape=(None, 8, 4))
    h = conv.conv1d(x, p["w"], p["b"], padding="causal")
    h = h + attention.multi_head_attention(h, *[p["wq"], p["bq"]] * 4, heads=2)
    h = norm.layer_norm(h, p["g"], p["bq"])[1]
    images = pt.tensor("img", dtype="float32", shape=(None, 4, 2, 6))
    img = conv.conv2d(images, p["w2"], None, padding="same")
    cost = pt.sum(pt.sqr(img)) + pt.sum(conv.global_pool(h, "max"))
    grads = pytensor.grad(cost, list(p.values()))
    xs = rng.normal(size=(2, 8, 4)).astype("float32")
    imgs = rng.normal(size=(2, 4, 2, 6)).astype("float32")
    with jax.enable_x64(True):  # PyTensor's JAX shared variables ask for float64 casts
        got = pytensor.function([x, images], grads, mode="JAX")(xs, imgs)
        # softmax compiles with config.mode even inside FAST_COMPILE (JAX under the default)
        ref = pytensor.function([x, images], grads, mode="FAST_COMPILE")(xs, imgs)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=2e-3, atol=2e-3)
