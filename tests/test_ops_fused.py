"""Fused recurrent ops against a ``pytensor.scan`` reference (float64, every output and gradient)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from trainkit.ops import SECOND_DERIVATIVES, UnsupportedError, fused_rnn, supported

BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}
ACT = {
    "tanh": pt.tanh,
    "sigmoid": pt.sigmoid,
    "relu": lambda z: pt.maximum(z, 0),
    "linear": lambda z: z,
}


def scan_reference(form, projected, hh, h0, activation="tanh"):
    """One example's sequence ``(T, G H)``, the maths of trainkit.recurrent; ``(out, cell)``."""
    act, n = ACT[activation], hh.shape[0]

    def rnn(xp, h):
        return act(xp + h @ hh)

    def lstm(xp, h, c):
        z = xp + h @ hh
        i, f, g, o = (z[:, k * n : (k + 1) * n] for k in range(4))
        c_new = pt.sigmoid(f) * c + pt.sigmoid(i) * pt.tanh(g)
        return pt.sigmoid(o) * act(c_new), c_new

    def gru(xp, h):
        zr = pt.sigmoid(xp[:, : 2 * n] + h @ hh[:, : 2 * n])
        z, r = zr[:, :n], zr[:, n:]
        cand = act(xp[:, 2 * n :] + (r * h) @ hh[:, 2 * n :])
        return (1 - z) * cand + z * h

    step = {"rnn": rnn, "lstm": lstm, "gru": gru}[form]
    init = [h0, pt.zeros_like(h0)] if form == "lstm" else [h0]
    seqs = pytensor.scan(
        step,
        sequences=[projected[:, None]],
        outputs_info=init,
        return_updates=False,
        mode="FAST_COMPILE",
    )
    seqs = seqs if form == "lstm" else [seqs]
    return [s[:, 0] for s in seqs]


def reference(form, projected, hh, h0, lengths, reverse, activation):
    """Per-example scans over each example's real steps, zeros at padding (batch-major)."""
    B, T, _ = projected.type.shape
    names = ["out", "cell"] if form == "lstm" else ["out"]
    seqs = {k: [] for k in names}
    last = []
    for b in range(B):
        L = T if lengths is None else int(lengths[b])
        if L == 0:
            for k in names:
                seqs[k].append(pt.zeros((T, hh.shape[0]), dtype=projected.dtype))
            last.append(h0[b])
            continue
        xs = projected[b, :L][::-1] if reverse else projected[b, :L]
        res = scan_reference(form, xs, hh, h0[b : b + 1], activation)
        last.append(res[0][-1])
        for k, s in zip(names, res, strict=True):
            s = s[::-1] if reverse else s
            pad = pt.zeros((T - L, hh.shape[0]), dtype=projected.dtype)
            seqs[k].append(pt.concatenate([s, pad]) if L < T else s)
    result = {k: pt.stack(v) for k, v in seqs.items()}
    result["last"] = pt.stack(last)
    return result


def functional(outputs, rng, B, T, H):
    """A random linear functional of every output, so every output's gradient is exercised."""
    total = 0
    for k in sorted(outputs):
        v = outputs[k]
        w = rng.normal(size=(B, H) if k == "last" else (B, T, H)).astype(v.dtype)
        total = total + (v * w).sum()
    return total


def compare(form, lengths, reverse, activation="tanh", B=3, T=5, H=4):
    rng = np.random.default_rng(42)
    G = BLOCKS[form]
    data = [
        rng.normal(size=(B, T, G * H)),
        rng.normal(size=(H, G * H)) * 0.7,
        rng.normal(size=(B, H)) * 0.5,
    ]
    with pytensor.config.change_flags(warn_float64="ignore"):
        proj = pt.tensor("proj", dtype="float64", shape=(B, T, G * H))
        hh = pt.tensor("hh", dtype="float64", shape=(H, G * H))
        h0 = pt.tensor("h0", dtype="float64", shape=(B, H))
        lens = None if lengths is None else pt.as_tensor(np.asarray(lengths, "int32"))
        fused = fused_rnn(form, proj, hh, h0, lengths=lens, reverse=reverse, activation=activation)
        ref = reference(form, proj, hh, h0, lengths, reverse, activation)
        assert sorted(fused) == sorted(ref)
        results = []
        for outs in (fused, ref):
            cost = functional(outs, np.random.default_rng(7), B, T, H)
            grads = pytensor.grad(cost, [proj, hh, h0])
            f = pytensor.function([proj, hh, h0], [*(outs[k] for k in sorted(outs)), *grads])
            results.append(f(*data))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    return dict(zip(sorted(fused), results[0], strict=False))


@pytest.mark.parametrize("form", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [5, 1, 3]], ids=["full", "lengths"])
def test_fused_matches_scan(form, reverse, lengths):
    values = compare(form, lengths, reverse)
    if lengths is not None:  # padded steps are zeros
        assert np.all(values["out"][1, 1:] == 0) and np.all(values["out"][2, 3:] == 0)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "linear"])
def test_other_activations(activation):
    compare("lstm", [4, 2, 0], False, activation, T=4)
    compare("gru", None, True, activation, T=3)
    compare("rnn", [3, 1, 2], True, activation, T=3)


def test_length_zero_keeps_h0():
    values = compare("gru", [0, 2, 1], True, T=2)
    assert np.all(values["out"][0] == 0)


@pytest.mark.parametrize("form", ["rnn", "lstm", "gru"])
def test_verify_grad(form):
    rng = np.random.default_rng(1)
    B, T, H = 2, 3, 2
    G = BLOCKS[form]
    lens = np.array([3, 2], "int64")

    def f(proj, hh, h0):
        outs = fused_rnn(form, proj, hh, h0, lengths=lens, reverse=True)
        return sum((v * (k + 1.5)).sum() for k, v in enumerate(outs.values())) + sum(
            (v**2).sum() for v in outs.values()
        )

    with pytensor.config.change_flags(warn_float64="ignore"):
        pytensor.gradient.verify_grad(
            f,
            [
                rng.normal(size=(B, T, G * H)),
                rng.normal(size=(H, G * H)) * 0.5,
                rng.normal(size=(B, H)),
            ],
            rng=rng,
            abs_tol=1e-6,
            rel_tol=1e-6,
        )


@pytest.mark.parametrize("form", ["lstm", "gru"])
def test_float32_in_float32_out(form):
    proj, hh, lens = pt.tensor3("proj", dtype="float32"), pt.fmatrix("hh"), pt.ivector("lens")
    outs = fused_rnn(form, proj, hh, lengths=lens, reverse=True)
    grads = pytensor.grad(sum(v.sum() for v in outs.values()), [proj, hh])
    assert {v.dtype for v in [*outs.values(), *grads]} == {"float32"}
    rng = np.random.default_rng(0)
    G = BLOCKS[form]
    f = pytensor.function([proj, hh, lens], [*outs.values(), *grads])
    res = f(
        rng.normal(size=(2, 3, 2 * G)).astype("float32"),
        rng.normal(size=(2, 2 * G)).astype("float32"),
        np.array([3, 1], "int32"),
    )
    assert all(r.dtype == np.float32 for r in res)


def test_unsupported():
    assert supported("lstm") and not supported("lstm", "softmax")
    assert SECOND_DERIVATIVES is True and supported("rnn", second_derivatives=True)
    with pytest.raises(UnsupportedError, match="unknown fused-op activation 'gelu'"):
        fused_rnn("rnn", pt.tensor3(), pt.matrix(), activation="gelu")
    with pytest.raises(UnsupportedError, match="unknown fused form 'lstmm'.*closest: lstm"):
        fused_rnn("lstmm", pt.tensor3(), pt.matrix())


@pytest.mark.parametrize(
    "form,lengths,reverse",
    [("rnn", [3, 1], False), ("lstm", [2, 3], True), ("gru", None, False)],
)
def test_second_derivatives_match_scan(form, lengths, reverse):
    """Gradient of a squared first gradient (what ``contractive`` does), fused vs scan."""
    from trainkit.ops.reference import scan_rnn

    rng = np.random.default_rng(3)
    B, T, H = 2, 3, 2
    G = BLOCKS[form]
    data = [
        rng.normal(size=(T, B, G * H)),
        rng.normal(size=(H, G * H)) * 0.6,
        rng.normal(size=(B, H)) * 0.5,
    ]
    with pytensor.config.change_flags(warn_float64="ignore"):
        proj = pt.tensor("proj", dtype="float64", shape=(T, B, G * H))
        hh = pt.tensor("hh", dtype="float64", shape=(H, G * H))
        h0 = pt.tensor("h0", dtype="float64", shape=(B, H))
        lens = None if lengths is None else pt.as_tensor(np.asarray(lengths, "int32"))
        results = []
        for build in (
            lambda: fused_rnn(form, proj, hh, h0, lens, reverse, time_major=True),
            lambda: scan_rnn(form, proj, hh, h0, lens, reverse),
        ):
            outs = build()
            first = functional(
                {k: v.dimshuffle(1, 0, 2) if v.ndim == 3 else v for k, v in outs.items()},
                np.random.default_rng(7),
                B,
                T,
                H,
            )
            g_proj, g_hh = pytensor.grad(first, [proj, hh])
            second = (g_proj**2).sum() + (g_hh**3).sum()
            grads = pytensor.grad(second, [proj, hh, h0])
            results.append(pytensor.function([proj, hh, h0], grads)(*data))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_lengths_out_of_range():
    proj, hh = pt.tensor3("proj"), pt.matrix("hh")
    lens = pt.ivector("lens")
    f = pytensor.function([proj, hh, lens], fused_rnn("rnn", proj, hh, lengths=lens)["out"])
    with pytest.raises(ValueError, match="lengths: every length must lie in 0..2"):
        f(np.zeros((2, 2, 3), "float32"), np.zeros((3, 3), "float32"), np.array([3, 1], "int32"))
