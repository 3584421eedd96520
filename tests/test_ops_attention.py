"""Multi-head attention against numpy (gradients by complex step) and torch's SDPA, float64.

All cases compile into one function per mode (see ``ops_check``).
"""

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from ops_check import Case, run

from regularizers.errors import InvalidArgument
from trainkit.ops import attention

RNG = np.random.default_rng(31)
B, T, N_IN = 3, 5, 4
PARAMS = ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")
# name -> (heads, D, lengths or None, causal)
CASES_SPEC = {
    "plain": (2, 6, None, False),
    "padded": (2, 4, [5, 3, 1], False),
    "causal": (1, 3, None, True),
    "causal_padded": (3, 6, [2, 5, 4], True),
    "empty_row": (2, 4, [0, 3, 5], True),  # a fully padded sequence: finite, uniform weights
}
TORCH_CASES = ("plain", "padded", "causal", "causal_padded")


def mask_of(lengths):
    return (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype("float64")


def _cases():
    cases = []
    for name, (heads, D, lengths, causal) in CASES_SPEC.items():
        inputs = dict(x=RNG.normal(size=(B, T, N_IN)))
        for p in PARAMS:
            shape = (D,) if p.startswith("b") else (D, D) if p == "wo" else (N_IN, D)
            inputs[p] = RNG.normal(scale=0.7, size=shape)
        if lengths is not None:
            inputs["mask"] = mask_of(lengths)

        def build(heads=heads, causal=causal, mask=None, **v):
            params = [v[p] for p in PARAMS]
            return [
                attention.multi_head_attention(v["x"], *params, heads, mask=mask, causal=causal)
            ]

        cases.append(Case(name, inputs, build, [(B, T, D)]))
    return cases


CASES = _cases()


# -- numpy: forward (complex-safe) and complex-step gradients ---------------------------


def np_attention(v, heads, causal):
    x = v["x"]
    q, k, val = (x @ v[w] + v[b] for w, b in (("wq", "bq"), ("wk", "bk"), ("wv", "bv")))
    D = q.shape[-1]
    d = D // heads
    visible = np.ones((x.shape[0], T, T), bool)
    if causal:
        visible &= np.tril(np.ones((T, T), bool))[None]
    if "mask" in v:
        visible &= (v["mask"] > 0)[:, None, :]
    outs = []
    for h in range(heads):
        s = slice(h * d, (h + 1) * d)
        scores = q[..., s] @ np.swapaxes(k[..., s], 1, 2) / np.sqrt(d)
        scores = np.where(visible, scores, -1e9)
        scores = scores - scores.real.max(axis=-1, keepdims=True)
        e = np.exp(scores)
        outs.append((e / e.sum(axis=-1, keepdims=True)) @ val[..., s])
    return np.concatenate(outs, axis=-1) @ v["wo"] + v["bo"]


def numpy_reference(case, r):
    heads, _, _, causal = CASES_SPEC[case.name]
    v = case.inputs
    out = np_attention(v, heads, causal)
    grads = {}
    step = 1e-30
    for key in ("x", *PARAMS):
        g = np.zeros_like(v[key])
        for index in np.ndindex(*v[key].shape):
            shifted = {k: a.astype(complex) for k, a in v.items()}
            shifted[key][index] += 1j * step
            g[index] = np.sum(np_attention(shifted, heads, causal) * r).imag / step
        grads[key] = g
    return out, grads


MODES = ["FAST_COMPILE", "JAX", pytest.param("NUMBA", marks=pytest.mark.numba)]


@functools.cache
def compiled(mode):
    return run(CASES, mode)


@functools.cache
def numpy_results():
    _, proj = compiled("FAST_COMPILE")
    return {case.name: numpy_reference(case, proj[case.name][0]) for case in CASES}


def check(got, out, grads, name):
    np.testing.assert_allclose(got[0][0], out, rtol=1e-10, atol=1e-10, err_msg=name)
    for k, g in grads.items():
        np.testing.assert_allclose(got[1][k], g, rtol=1e-9, atol=1e-10, err_msg=f"{name} d{k}")


@pytest.mark.parametrize("mode", MODES)
def test_forward_and_gradients_match_numpy(mode):
    got, _ = compiled(mode)
    for case in CASES:
        out, grads = numpy_results()[case.name]
        check(got[case.name], out, grads, case.name)
        assert np.isfinite(got[case.name][0][0]).all()


def torch_reference(torch, case, r):
    heads, D, lengths, causal = CASES_SPEC[case.name]
    v = {k: torch.tensor(a, requires_grad=k != "mask") for k, a in case.inputs.items()}
    x = v["x"]

    def split(t):  # (B, T, D) -> (B, heads, T, D/heads)
        return t.reshape(B, T, heads, D // heads).transpose(1, 2)

    q, k, val = (split(x @ v[w] + v[b]) for w, b in (("wq", "bq"), ("wk", "bk"), ("wv", "bv")))
    visible = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        visible = visible & torch.ones(T, T, dtype=torch.bool).tril()
    if lengths is not None:
        visible = visible & (v["mask"] > 0)[:, None, None, :]
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, val, attn_mask=visible)
    out = attended.transpose(1, 2).reshape(B, T, D) @ v["wo"] + v["bo"]
    (out * torch.tensor(r)).sum().backward()
    return out.detach().numpy(), {k: t.grad.numpy() for k, t in v.items() if k != "mask"}


@pytest.mark.parametrize("mode", MODES)
def test_forward_and_gradients_match_torch_sdpa(mode):
    torch = pytest.importorskip("torch")
    got, proj = compiled(mode)
    for case in CASES:
        if case.name in TORCH_CASES:  # torch gives NaN for a fully padded row
            out, grads = torch_reference(torch, case, proj[case.name][0])
            check(got[case.name], out, grads, case.name)


def test_sinusoidal_positions_match_the_formula():
    got = attention.sinusoidal_positions(7, 5, "float32")
    assert got.shape == (7, 5) and got.dtype == np.float32
    for t in range(7):
        for i in range(5):
            angle = t / 10000 ** (2 * (i // 2) / 5)
            expected = np.sin(angle) if i % 2 == 0 else np.cos(angle)
            assert got[t, i] == pytest.approx(expected, abs=1e-6)


def test_dynamic_time_axis_and_float32():
    """Off JAX the time axis may be unknown to the graph (causal steps from a cumsum); float32 stays float32."""
    x = pt.tensor3("x", dtype="float32")
    m = pt.matrix("m", dtype="float32")
    w = pt.constant(RNG.normal(size=(4, 4)).astype("float32"))
    b = pt.constant(np.zeros(4, "float32"))
    y = attention.multi_head_attention(x, w, b, w, b, w, b, w, b, 2, mask=m, causal=True)
    assert y.dtype == "float32"
    xs = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    ms = np.array([[1] * 6, [1] * 2 + [0] * 4], "float32")
    xt = pt.tensor("xt", dtype="float32", shape=(None, 6, 4))
    yt = attention.multi_head_attention(xt, w, b, w, b, w, b, w, b, 2, mask=m, causal=True)
    with pytensor.config.change_flags(mode="FAST_COMPILE"):  # softmax compiles with config.mode
        dynamic = pytensor.function([x, m], y)(xs, ms)
        static = pytensor.function([xt, m], yt)(xs, ms)
    np.testing.assert_allclose(dynamic, static, rtol=1e-6)


@pytest.mark.parametrize(
    "heads, match",
    [
        (
            4,
            r"heads: the width 6 must be a multiple of heads, got heads=4; divisors of 6: 1, 2, 3, 6",
        ),
        (0, r"heads: must be a positive int, got 0"),
    ],
)
def test_bad_heads_fail_with_one_line(heads, match):
    x = pt.tensor3("x")
    w = pt.tensor("w", shape=(3, 6))
    b = pt.vector("b")
    with pytest.raises(InvalidArgument, match=match):
        attention.multi_head_attention(x, w, b, w, b, w, b, pt.matrix("wo"), b, heads)
