"""Layer and batch normalisation against numpy (textbook backward formulas) and torch, float64.

All cases compile into one function per mode (see ``ops_check``).
"""

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from ops_check import Case, run

from regularizers.errors import InvalidArgument
from trainkit.ops import norm

RNG = np.random.default_rng(23)
EPS = 1e-5
MOMENTUM = 0.1
MASK = np.array([[1] * 5, [1] * 2 + [0] * 3, [1] + [0] * 4], "float64")  # lengths 5, 2, 1


def normal(*shape, scale=1.0, shift=0.0):
    return RNG.normal(shift, scale, size=shape)


def _ln(x, g, b):
    return list(norm.layer_norm(x, g, b, eps=EPS))


def _bn(x, g, b, rm, rv, mask=None):
    normed, out, mean, var = norm.batch_norm_train(x, g, b, eps=EPS, mask=mask)
    if mask is not None:  # padded steps are outside the cost (and the reference)
        m = pt.cast(mask, x.dtype)[:, :, None]
        normed, out = normed * m, out * m
    return [
        normed,
        out,
        norm.running_update(rm, mean, MOMENTUM),
        norm.running_update(rv, var, MOMENTUM),
    ]


def _infer(x, g, b, rm, rv):
    return list(norm.batch_norm_infer(x, g, b, rm, rv, eps=EPS))


def _stats(F):
    return dict(g=normal(F, shift=1.0), b=normal(F), rm=normal(F), rv=RNG.uniform(0.5, 2.0, F))


def _cases():
    x3 = normal(3, 5, 4, scale=2.0, shift=0.5)
    cases = [
        Case("ln", dict(x=x3, g=normal(4), b=normal(4)), _ln, [x3.shape] * 2),
        Case("bn_seq", dict(x=x3, **_stats(4)), _bn, [x3.shape] * 2 + [(4,)] * 2, graded=2),
        Case(
            "bn_mask",
            dict(x=normal(3, 5, 4, scale=3.0), mask=MASK, **_stats(4)),
            _bn,
            [x3.shape] * 2 + [(4,)] * 2,
            graded=2,
        ),
    ]
    img = normal(2, 3, 4, 3, scale=0.5)
    cases.append(
        Case("bn_img", dict(x=img, **_stats(3)), _bn, [img.shape] * 2 + [(3,)] * 2, graded=2)
    )
    cases.append(Case("bn_infer", dict(x=x3, **_stats(4)), _infer, [x3.shape] * 2))
    return cases


CASES = _cases()


# -- numpy references -------------------------------------------------------------------


def np_norm_backward(xhat, sigma, dxhat, axes, real=None):
    """dL/dx of x -> (x - mean) / sigma with mean, biased var over ``axes`` (real entries only)."""
    real = np.ones_like(xhat) if real is None else real
    n = real.sum(axis=axes, keepdims=True)
    dxhat = dxhat * real
    s1 = dxhat.sum(axis=axes, keepdims=True)
    s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
    return real * (n * dxhat - s1 - xhat * s2) / (n * sigma)


def numpy_reference(case, r):
    v = case.inputs
    x = v["x"]
    if case.name == "bn_infer":
        sigma = np.sqrt(v["rv"] + EPS)
        xhat = (x - v["rm"]) / sigma
        dxhat = r[0] + r[1] * v["g"]
        grads = dict(
            x=dxhat / sigma,
            g=(r[1] * xhat).sum(axis=(0, 1)),
            b=r[1].sum(axis=(0, 1)),
            rm=-(dxhat / sigma).sum(axis=(0, 1)),
            rv=(dxhat * (x - v["rm"]) * -0.5 * (v["rv"] + EPS) ** -1.5).sum(axis=(0, 1)),
        )
        return [xhat, xhat * v["g"] + v["b"]], grads
    if case.name == "ln":
        axes, real, stat_axes = -1, None, None
    else:
        axes = tuple(range(x.ndim - 1))
        real = None if "mask" not in v else np.broadcast_to(v["mask"][:, :, None], x.shape)
        stat_axes = axes
    w = np.ones_like(x) if real is None else real
    n = w.sum(axis=axes, keepdims=True)
    mean = (w * x).sum(axis=axes, keepdims=True) / n
    var = (w * (x - mean) ** 2).sum(axis=axes, keepdims=True) / n
    sigma = np.sqrt(var + EPS)
    xhat = (x - mean) / sigma
    out = xhat * v["g"] + v["b"]
    dxhat = r[0] + r[1] * v["g"]
    grads = dict(x=np_norm_backward(xhat, sigma, dxhat, axes, real))
    sum_axes = tuple(range(x.ndim - 1))
    grads["g"] = (w * r[1] * xhat).sum(axis=sum_axes)
    grads["b"] = (w * r[1]).sum(axis=sum_axes)
    if case.name == "ln":
        return [xhat, out], grads
    unbiased = var * n / (n - 1)
    outs = [w * xhat, w * out]
    outs.append((1 - MOMENTUM) * v["rm"] + MOMENTUM * mean.reshape(-1))
    outs.append((1 - MOMENTUM) * v["rv"] + MOMENTUM * unbiased.reshape(-1))
    assert stat_axes is not None
    return outs, grads


MODES = ["FAST_COMPILE", "JAX", pytest.param("NUMBA", marks=pytest.mark.numba)]


@functools.cache
def compiled(mode):
    return run(CASES, mode)


def check(got, outs, grads, name):
    for i, (a, b) in enumerate(zip(got[0], outs, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=f"{name} output {i}")
    for k, g in grads.items():
        np.testing.assert_allclose(got[1][k], g, rtol=1e-9, atol=1e-10, err_msg=f"{name} d{k}")


@pytest.mark.parametrize("mode", MODES)
def test_forward_and_gradients_match_numpy(mode):
    got, proj = compiled(mode)
    for case in CASES:
        outs, grads = numpy_reference(case, proj[case.name])
        check(got[case.name], outs, grads, case.name)


def torch_reference(torch, case, r):
    F = torch.nn.functional
    v = {k: torch.tensor(a, requires_grad=k in ("x", "g", "b")) for k, a in case.inputs.items()}
    x, g, b = v["x"], v["g"], v["b"]
    r = [torch.tensor(a) for a in r]
    if case.name == "ln":
        xhat = F.layer_norm(x, (x.shape[-1],), eps=EPS)
        out = F.layer_norm(x, (x.shape[-1],), g, b, eps=EPS)
        outs = [xhat, out]
    elif case.name == "bn_infer":
        channels = x.transpose(1, 2)
        xhat = F.batch_norm(channels, v["rm"], v["rv"], training=False, eps=EPS).transpose(1, 2)
        out = F.batch_norm(channels, v["rm"], v["rv"], g, b, training=False, eps=EPS)
        outs = [xhat, out.transpose(1, 2)]
    else:
        rm, rv = v["rm"].clone(), v["rv"].clone()
        if "mask" in v:
            real = v["mask"] > 0
            flat = x[real]  # (real steps, F): what BatchNorm1d sees without the padding
        else:
            real = None
            flat = x.movedim(-1, 1)  # (N, C, ...) as torch wants it
        xhat = F.batch_norm(flat, None, None, training=True, eps=EPS)
        out = F.batch_norm(flat, rm, rv, g, b, training=True, momentum=MOMENTUM, eps=EPS)
        if real is None:
            xhat, out = xhat.movedim(1, -1), out.movedim(1, -1)
        else:
            full = torch.zeros_like(x)
            xhat = full.index_put((real,), xhat)
            out = full.index_put((real,), out)
        outs = [xhat, out, rm, rv]
    ((outs[0] * r[0]).sum() + (outs[1] * r[1]).sum()).backward()
    grads = {k: v[k].grad.numpy() for k in ("x", "g", "b")}
    return [o.detach().numpy() for o in outs], grads


@pytest.mark.parametrize("mode", MODES)
def test_forward_gradients_and_running_statistics_match_torch(mode):
    torch = pytest.importorskip("torch")
    got, proj = compiled(mode)
    for case in CASES:
        outs, grads = torch_reference(torch, case, proj[case.name])
        check(got[case.name], outs, grads, case.name)


def test_a_single_real_step_gives_finite_statistics():
    with pytensor.config.change_flags(warn_float64="ignore"):
        x = pt.tensor3("x", dtype="float64")
        m = pt.matrix("m", dtype="float64")
        one = pt.constant(np.ones(2))
        outs = norm.batch_norm_train(x, one, one * 0, mask=m)
        f = pytensor.function([x, m], outs, mode="FAST_COMPILE")
        values = f(np.ones((2, 3, 2)), np.array([[1.0, 0, 0], [0, 0, 0]]))
    assert all(np.isfinite(v).all() for v in values)
    np.testing.assert_array_equal(values[3], [0.0, 0.0])  # unbiased var of one value: 0, not inf


def test_float32_stays_float32():
    x = pt.tensor3("x", dtype="float32")
    g = pt.vector("g", dtype="float32")
    m = pt.matrix("m", dtype="float32")
    outs = [*norm.layer_norm(x, g, g), *norm.batch_norm_train(x, g, g, mask=m)]
    outs += [*norm.batch_norm_train(x, g, g), *norm.batch_norm_infer(x, g, g, g, g)]
    outs.append(norm.running_update(g, outs[-3]))
    assert [o.dtype for o in outs] == ["float32"] * len(outs)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x, g: norm.layer_norm(x, g, g, eps=-1), r"eps: must be a number >= 0, got -1"),
        (
            lambda x, g: norm.running_update(g, g, momentum=1.5),
            r"momentum: must be a number in \[0, 1\], got 1.5",
        ),
        (
            lambda x, g: norm.batch_norm_train(pt.tensor4("i"), g, g, mask=pt.matrix("m")),
            r"batch_norm_train: a mask needs \(batch, time, F\) input, got 4-d",
        ),
    ],
)
def test_bad_arguments_fail_with_one_line(call, match):
    with pytest.raises(InvalidArgument, match=match):
        call(pt.tensor3("x"), pt.vector("g"))
