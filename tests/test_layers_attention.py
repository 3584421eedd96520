"""Self-attention in a network: forward and gradients against torch's
``scaled_dot_product_attention``, with padded keys masked (lengths) and causal."""

import numpy as np
import pytest

import trainkit
from tests.layer_check import (  # noqa: F401 (float64 is an autouse fixture)
    MODES,
    assert_close,
    float64,
    forward_and_grads,
    randomise,
    torch_grads,
    values,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _attention(h, q, name, heads, causal):
    """(time, n_in) -> (time, D) by torch, for one unpadded sequence."""
    Q, K, V = (h @ q[f"{name}.w{k}"] + q[f"{name}.b{k}"] for k in "qkv")
    T, D = Q.shape
    split = lambda z: z.reshape(T, heads, D // heads).transpose(0, 1)  # noqa: E731
    o = F.scaled_dot_product_attention(split(Q), split(K), split(V), is_causal=causal)
    return o.transpose(0, 1).reshape(T, D) @ q[f"{name}.wo"] + q[f"{name}.bo"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_lengths_matches_torch(mode, causal, rng):
    net = trainkit.Regressor(
        [
            dict(size=3, lengths=True),
            dict(form="position", kind="sine", name="pos"),
            dict(form="attention", size=4, heads=2, causal=causal, name="att"),
            dict(form="add", inputs=["att", "att:pre"], name="res"),
            dict(form="layernorm", name="ln"),
            dict(size=2),
        ],
        dtype="float64",
    )
    randomise(net, rng)
    T = 6
    x = rng.normal(size=(3, T, 3))
    lengths = np.array([6, 2, 4])
    r = rng.normal(size=(3, T, 2))
    for i, L in enumerate(lengths):
        r[i, L:] = 0
    t = np.arange(T)[:, None]
    i2 = np.arange(3)
    pe = np.where(
        i2 % 2 == 0,
        np.sin(t / 10000 ** (2 * (i2 // 2) / 3)),
        np.cos(t / 10000 ** (2 * (i2 // 2) / 3)),
    )

    def forward(q):
        out = torch.zeros((3, T, 2), dtype=torch.float64)
        for i, L in enumerate(lengths):
            h = torch.tensor(x[i, :L] + pe[:L])
            a = _attention(h, q, "att", 2, causal)
            n = F.layer_norm(2 * a, (4,), q["ln.g"], q["ln.b"], eps=1e-5)
            out[i, :L] = n @ q["out.w"] + q["out.b"]
        return out

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, mode, lengths=lengths)
    for i, L in enumerate(lengths):
        assert_close(out[i, :L], expected[i, :L])
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


def test_attention_size_and_heads_are_checked():
    with pytest.raises(ValueError, match=r"layers\[1\]: attention layer 'hid1': size 6 is not a"):
        trainkit.Regressor([3, dict(form="attention", size=6, heads=4), 1])
    with pytest.raises(ValueError, match=r"layers\[1\]: heads must be a positive int"):
        trainkit.Regressor([3, dict(form="attention", heads=0), 1])
    net = trainkit.Regressor([3, dict(form="attention", heads=3), 1])
    assert net.params["hid1.wq"].get_value().shape == (3, 3)
