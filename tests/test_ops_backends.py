"""Fused recurrent ops on the Numba and JAX backends, and the LSTM against PyTorch's ``nn.LSTM``."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from trainkit.ops import fused_rnn

BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}


def build(form, mode, B=3, T=4, H=3, dtype="float64", reverse=True):
    """Outputs and gradients (w.r.t. projected, hh, h0) of a random functional, compiled in ``mode``."""
    G = BLOCKS[form]
    proj = pt.tensor("proj", dtype=dtype, shape=(B, T, G * H))
    hh = pt.tensor("hh", dtype=dtype, shape=(H, G * H))
    h0 = pt.tensor("h0", dtype=dtype, shape=(B, H))
    lens = pt.ivector("lens")
    outs = fused_rnn(form, proj, hh, h0, lengths=lens, reverse=reverse)
    rng = np.random.default_rng(3)
    # the functional's weights are inputs: large constants would stop Numba caching the graph
    weights = {k: pt.tensor(f"w_{k}", dtype=dtype, shape=v.type.shape) for k, v in outs.items()}
    cost = sum((v * weights[k]).sum() for k, v in sorted(outs.items()))
    grads = pytensor.grad(cost, [proj, hh, h0])
    f = pytensor.function(
        [proj, hh, h0, lens, *(weights[k] for k in sorted(outs))],
        [*(outs[k] for k in sorted(outs)), *grads],
        mode=mode,
    )
    data = [
        rng.normal(size=(B, T, G * H)).astype(dtype),
        (rng.normal(size=(H, G * H)) * 0.6).astype(dtype),
        rng.normal(size=(B, H)).astype(dtype),
        np.array([T, 1, 2], "int32")[:B],
    ]
    data += [
        rng.normal(size=(B, H) if k == "last" else (B, T, H)).astype(dtype) for k in sorted(outs)
    ]
    return [np.asarray(r) for r in f(*data)]


@pytest.mark.parametrize("form", ["rnn", "lstm", "gru"])
def test_jax_parity(form):
    with pytensor.config.change_flags(warn_float64="ignore"):
        ref = build(form, "FAST_COMPILE")
        import jax

        with jax.enable_x64(True):
            got = build(form, "JAX")
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("form", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_jax_kernels_match_the_numpy_kernels(form, activation):
    """JAX's forward and hand-written backward against the NumPy kernels, float64:
    every output and gradient, forward and reverse, full and padded (one length 0)."""
    import jax

    from trainkit.ops import kernels
    from trainkit.ops.jax import jax_backward, jax_forward

    rng = np.random.default_rng(7)
    T, B, H, G = 6, 5, 4, BLOCKS[form]
    visible = 3 if form == "lstm" else 2
    with jax.enable_x64(True):
        for reverse, lengths in [
            (False, None),
            (True, None),
            (False, [6, 0, 3, 1, 6]),
            (True, [6, 0, 3, 1, 6]),
        ]:
            proj = rng.normal(size=(T, B, G * H))
            hh = rng.normal(size=(H, G * H)) * 0.5
            h0 = rng.normal(size=(B, H))
            full = np.full(B, T) if lengths is None else np.array(lengths)
            ref = kernels.forward(form, activation, reverse, proj.copy(), hh, h0, full)
            got = jax_forward(
                form, activation, reverse, proj, hh, h0, None if lengths is None else full
            )
            for a, b in zip(ref[:visible], got[:visible], strict=True):
                np.testing.assert_allclose(np.asarray(b), a, rtol=1e-12, atol=1e-12)
            grads = [rng.normal(size=(T, B, H)) for _ in range(visible - 1)]
            grads.append(rng.normal(size=(B, H)))
            for present in (grads, [None] * (visible - 1) + grads[-1:]):
                want = kernels.backward(form, activation, reverse, hh, full, present, ref[visible:])
                have = jax_backward(
                    form,
                    activation,
                    reverse,
                    hh,
                    None if lengths is None else full,
                    present,
                    got[visible:],
                )
                for a, b in zip(want, have, strict=True):
                    np.testing.assert_allclose(np.asarray(b), a, rtol=1e-10, atol=1e-12)


def test_jax_float32_full_length():
    ref = build("lstm", "FAST_COMPILE", dtype="float32", reverse=False)
    got = build("lstm", "JAX", dtype="float32", reverse=False)
    for a, b in zip(ref, got, strict=True):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.numba
def test_numba_backend_matches_python():
    with pytensor.config.change_flags(warn_float64="ignore"):
        ref = build("lstm", "FAST_COMPILE")
        got = build("lstm", "NUMBA")
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_lstm_matches_torch():
    import torch  # a test dependency (the test extra): never skipped silently

    rng = np.random.default_rng(0)
    B, T, F, H = 3, 5, 4, 6
    x = rng.normal(size=(B, T, F))
    lstm = torch.nn.LSTM(F, H, batch_first=True).double()
    w_ih, w_hh = lstm.weight_ih_l0.detach().numpy(), lstm.weight_hh_l0.detach().numpy()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()
    xt = torch.tensor(x, requires_grad=True)
    out, (hn, cn) = lstm(xt)
    g_out = rng.normal(size=(B, T, H))
    (out * torch.tensor(g_out)).sum().backward()
    with pytensor.config.change_flags(warn_float64="ignore"):
        xv = pt.tensor("x", dtype="float64", shape=(B, T, F))
        # torch's gate order is i, f, g, o, as trainkit's; its weights are (4H, in)
        outs = fused_rnn("lstm", xv @ w_ih.T + b, pt.as_tensor(w_hh.T.copy()))
        gx = pytensor.grad((outs["out"] * g_out).sum(), xv)
        f = pytensor.function([xv], [outs["out"], outs["cell"][:, -1], outs["last"], gx])
        o, c_last, last, dx = f(x)
    np.testing.assert_allclose(o, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(last, hn[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c_last, cn[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
