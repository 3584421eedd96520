"""Chains of strided, pooled and padded layers whose gradients JAX must trace.

The chain conv1d stride 2 -> maxpool1d -> conv1d 'same' -> conv1d 'causal'
once failed to trace on JAX ("Shapes must be concrete": the pool's ``-1``
reshape and zero pads shaped by the symbolic batch size). Each case here
compiles the gradient on JAX, compares it with torch's autograd (float64,
1e-10), and trains a few SGD updates on JAX against the same updates made
by torch (plain SGD, so no optimizer scale invariance hides a wrong gradient).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import trainkit
from tests.layer_check import (  # noqa: F401 (float64 is an autouse fixture)
    assert_close,
    float64,
    forward_and_grads,
    randomise,
    torch_grads,
    values,
)
from tests.test_layers_conv import _conv1d, _padded, _pool1d
from trainkit.ops import attention, conv

torch = pytest.importorskip("torch")

QUIET = dict(progress=False, log=False)
CHAIN = [
    dict(form="conv1d", size=4, kernel=3, stride=2, activation="tanh", name="c1"),
    dict(form="maxpool1d", pool=2, name="p1"),
    dict(form="conv1d", size=3, kernel=3, padding="same", activation="tanh", name="c2"),
    dict(form="conv1d", size=2, kernel=2, padding="causal", activation="linear", name="c3"),
]


def _torch_chain(h, q):
    """(time, 3) -> (time', 2): the chain on one unpadded sequence."""
    h = torch.tanh(_conv1d(h, q["c1.w"], q["c1.b"], stride=2))
    h = _pool1d(h, 2, "max")
    h = torch.tanh(_conv1d(h, q["c2.w"], q["c2.b"], padding="same"))
    return _conv1d(h, q["c3.w"], q["c3.b"], padding="causal")


def test_op_chain_gradient_and_sgd_updates_on_jax_match_torch(rng):
    """The ops alone, batch size symbolic: JAX's gradient and three SGD updates equal torch's."""
    import jax

    shapes = {"c1.w": (3, 3, 4), "c2.w": (3, 4, 3), "c3.w": (2, 3, 2)}
    init = {k: rng.normal(0, 0.5, s) for k, s in shapes.items()}
    init.update({k[:-1] + "b": rng.normal(0, 0.5, s[-1]) for k, s in shapes.items()})
    params = {k: pytensor.shared(v.copy(), name=k) for k, v in init.items()}
    p = params
    x = pt.tensor("x", dtype="float64", shape=(None, 21, 3))
    r = pt.tensor("r", dtype="float64", shape=(None, 5, 2))
    h = pt.tanh(conv.conv1d(x, p["c1.w"], p["c1.b"], stride=2))
    h = conv.pool1d(h, 2, "max")
    h = pt.tanh(conv.conv1d(h, p["c2.w"], p["c2.b"], padding="same"))
    out = conv.conv1d(h, p["c3.w"], p["c3.b"], padding="causal")
    names = list(params)
    grads = pytensor.grad(pt.sum(out * r), [params[n] for n in names])
    xs = rng.normal(size=(4, 21, 3))
    rs = rng.normal(size=(4, 5, 2))
    with jax.enable_x64(True):
        got = pytensor.function([x, r], grads, mode="JAX")(xs, rs)
        step = pytensor.function(
            [x, r],
            [],
            updates={params[n]: params[n] - 0.1 * g for n, g in zip(names, grads, strict=True)},
            mode="JAX",
        )

    def forward(q):
        return torch.stack([_torch_chain(torch.tensor(xi), q) for xi in xs])

    _, expected = torch_grads(forward, init, rs)
    for n, g in zip(names, got, strict=True):
        assert_close(np.asarray(g), expected[n])

    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    sgd = torch.optim.SGD(tensors.values(), lr=0.1)
    for _ in range(3):
        with jax.enable_x64(True):
            step(xs, rs)
        sgd.zero_grad()
        (forward(tensors) * torch.tensor(rs)).sum().backward()
        sgd.step()
    for n in names:
        assert_close(np.asarray(params[n].get_value()), tensors[n].detach().numpy())


@pytest.mark.parametrize("lengths", [False, True])
def test_layer_chain_gradient_and_sgd_training_on_jax(lengths, rng):
    """The same chain as layers, with and without lengths: gradient against torch on JAX,
    then SGD updates through ``net.train(mode='JAX')`` equal those under FAST_COMPILE."""
    layers = [dict(size=3, lengths=lengths), *CHAIN]
    net = trainkit.Regressor(layers, dtype="float64")
    randomise(net, rng)
    init = values(net)
    T = 21
    x = rng.normal(size=(3, T, 3))
    L = np.array([21, 17, 12]) if lengths else np.array([T] * 3)
    n = lambda k: ((k - 3) // 2 + 1) // 2  # noqa: E731 (conv k3 s2, then pool 2)
    r = rng.normal(size=(3, n(T), 2))
    for i, k in enumerate(L):
        r[i, n(k) :] = 0

    def forward(q):
        return _padded([_torch_chain(torch.tensor(x[i, :k]), q) for i, k in enumerate(L)], n(T))

    expected, grads_expected = torch_grads(forward, init, r)
    out, grads = forward_and_grads(net, x, r, "JAX", lengths=L if lengths else None)
    for i, k in enumerate(L):
        assert_close(out[i, : n(k)], expected[i, : n(k)])
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])

    # training (float32: trainkit's float64 training on JAX is another matter, see the report)
    net32 = trainkit.Regressor(layers, dtype="float32")
    init32 = {k: v.astype("float32") for k, v in init.items()}
    y = rng.normal(size=(3, n(T), 2)).astype("float32")
    data = [x.astype("float32"), y] + ([L.astype("int32")] if lengths else [])
    trained = {}
    with pytensor.config.change_flags(floatX="float32"):
        for mode in ("JAX", "FAST_COMPILE"):
            for k, v in init32.items():
                net32.params[k].set_value(v.copy())
            net32.train(
                data,
                algo="sgd",
                learning_rate=0.05,
                batch_size=3,
                max_updates=3,
                mode=mode,
                **QUIET,
            )
            trained[mode] = {k: np.asarray(v) for k, v in values(net32).items()}
    for k in init32:
        assert not np.allclose(trained["JAX"][k], init32[k])
        assert_close(trained["JAX"][k], trained["FAST_COMPILE"][k], tol=1e-5)


def test_image_and_attention_chains_trace_on_jax(rng):
    """conv2d stride 2 -> pool2d -> conv2d 'same' -> global pooling, and attention after a
    strided conv1d and a pool: gradients on JAX equal FAST_COMPILE's, batch symbolic."""
    import jax

    shapes = dict(
        w1=(3, 3, 2, 4), w2=(3, 3, 4, 3), k=(3, 3, 4), wq=(4, 4), bq=(4,), wo=(4, 4), bo=(4,)
    )
    p = {k: pytensor.shared(rng.normal(0, 0.5, s), name=k) for k, s in shapes.items()}
    img = pt.tensor("img", dtype="float64", shape=(None, 9, 8, 2))
    h = pt.tanh(conv.conv2d(img, p["w1"], None, stride=2))
    h = conv.pool2d(h, 2, "avg")
    h = conv.conv2d(h, p["w2"], None, padding="same")
    cost = pt.sum(pt.sqr(conv.global_pool(h, "max")))
    seq = pt.tensor("seq", dtype="float64", shape=(None, 20, 3))
    s = conv.pool1d(conv.conv1d(seq, p["k"], None, stride=2), 3, "avg")
    a = attention.multi_head_attention(
        s, p["wq"], p["bq"], p["wq"], p["bq"], p["wq"], p["bq"], p["wo"], p["bo"], heads=2
    )
    cost = cost + pt.sum(pt.sqr(conv.global_pool(a + s, "avg")))
    grads = pytensor.grad(cost, list(p.values()))
    args = rng.normal(size=(3, 9, 8, 2)), rng.normal(size=(3, 20, 3))
    with jax.enable_x64(True):
        got = pytensor.function([img, seq], grads, mode="JAX")(*args)
        # softmax compiles with config.mode even inside FAST_COMPILE (JAX under PYTENSOR_FLAGS)
        ref = pytensor.function([img, seq], grads, mode="FAST_COMPILE")(*args)
    for a_, b_ in zip(got, ref, strict=True):
        assert_close(np.asarray(a_), b_)


def _trained(layers, data, mode):
    net = trainkit.Classifier(layers, seed=1, dtype="float32")
    with pytensor.config.change_flags(floatX="float32"):
        net.train(
            data, algo="sgd", learning_rate=0.1, batch_size=8, max_updates=2, mode=mode, **QUIET
        )
    return values(net)


@pytest.mark.parametrize("kind", ["tokens", "images"])
def test_embedding_and_image_chains_train_on_jax_as_off_it(kind, rng):
    """Token ids (lengths) -> embedding -> position -> strided conv -> pool -> attention ->
    layernorm -> global max; images -> strided conv2d -> pool2d -> conv2d 'same' ->
    batchnorm -> global average: two SGD updates on JAX equal FAST_COMPILE's."""
    if kind == "tokens":
        layers = [
            dict(vocab=30, lengths=True),
            dict(form="embedding", size=8),
            dict(form="position", max_length=40),
            dict(form="conv1d", size=8, kernel=3, stride=2),
            dict(form="maxpool1d", pool=2),
            dict(form="attention", heads=2),
            dict(form="layernorm"),
            dict(form="globalmaxpool"),
            3,
        ]
        x = rng.integers(0, 30, size=(16, 23)).astype("int32")
        extra = [rng.integers(8, 24, 16).astype("int32")]
    else:
        layers = [
            dict(shape=(9, 8, 2)),
            dict(form="conv2d", size=4, kernel=3, stride=2),
            dict(form="maxpool2d", pool=2),
            dict(form="conv2d", size=4, kernel=(2, 1), padding="same"),
            dict(form="batchnorm"),
            dict(form="globalavgpool"),
            3,
        ]
        x = rng.normal(size=(16, 9, 8, 2)).astype("float32")
        extra = []
    data = [x, rng.integers(0, 3, 16).astype("int32"), *extra]
    jax_values = _trained(layers, data, "JAX")
    reference = _trained(layers, data, "FAST_COMPILE")
    for name, value in reference.items():
        assert_close(jax_values[name], value, tol=1e-4)
