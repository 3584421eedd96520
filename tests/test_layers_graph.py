"""The layer graph: named inputs, add, tied, embedding, position, flatten; shapes and errors.

Forward passes against numpy written here, gradients against torch's
autograd, float64 to 1e-10, on JAX and (marked) Numba.
"""

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


def _sine(T, d):
    pe = np.zeros((T, d))
    for t in range(T):
        for i in range(d):
            angle = t / 10000 ** (2 * (i // 2) / d)
            pe[t, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    return pe


@pytest.mark.parametrize("mode", MODES)
def test_named_inputs_add_and_tied_match_numpy_and_torch(mode, rng):
    net = trainkit.Regressor(
        [
            3,
            dict(size=4, name="a", activation="tanh"),
            dict(size=3, name="b", inputs=["in", "a:out"], activation="tanh"),
            dict(form="add", name="sum", inputs=["in", "b"]),
            dict(form="tied", name="t", partner="b", activation="sigmoid"),
            dict(size=2, inputs=["t", "a:pre"]),
        ],
        dtype="float64",
    )
    assert [layer.out_shape.width for layer in net.layers] == [4, 3, 3, 7, 2]
    randomise(net, rng)
    x = rng.normal(size=(5, 3))
    r = rng.normal(size=(5, 2))
    p = values(net)

    def np_forward(x):
        a_pre = x @ p["a.w"] + p["a.b"]
        a = np.tanh(a_pre)
        b = np.tanh(np.concatenate([x, a], 1) @ p["b.w"] + p["b.b"])
        s = x + b
        t = 1 / (1 + np.exp(-(s @ p["b.w"].T + p["t.b"])))
        return np.concatenate([t, a_pre], 1) @ p["out.w"] + p["out.b"]

    def torch_forward(q):
        import torch

        xt = torch.tensor(x)
        a_pre = xt @ q["a.w"] + q["a.b"]
        a = torch.tanh(a_pre)
        b = torch.tanh(torch.cat([xt, a], 1) @ q["b.w"] + q["b.b"])
        t = torch.sigmoid((xt + b) @ q["b.w"].T + q["t.b"])
        return torch.cat([t, a_pre], 1) @ q["out.w"] + q["out.b"]

    out, grads = forward_and_grads(net, x, r, mode)
    assert_close(out, np_forward(x))
    _, expected = torch_grads(torch_forward, p, r)
    assert sorted(grads) == sorted(expected) and "t.w" not in grads
    for name in grads:
        assert_close(grads[name], expected[name])


@pytest.mark.parametrize("mode", MODES)
def test_embedding_and_positions_match_numpy_and_torch(mode, rng):
    V, D, T = 7, 4, 5
    net = trainkit.Regressor(
        [
            dict(vocab=V),
            dict(form="embedding", size=D, name="emb"),
            dict(form="position", max_length=6, name="pos"),
            dict(form="position", kind="sine", name="sine"),
            dict(size=2),
        ],
        dtype="float64",
    )
    randomise(net, rng)
    p = values(net)
    assert p["emb.w"].shape == (V, D) and p["pos.w"].shape == (6, D)
    x = rng.integers(0, V, size=(3, T)).astype("int32")
    r = rng.normal(size=(3, T, 2))
    sine = _sine(T, D)
    expected = (p["emb.w"][x] + p["pos.w"][:T] + sine) @ p["out.w"] + p["out.b"]

    def torch_forward(q):
        import torch

        h = q["emb.w"][torch.tensor(x, dtype=torch.long)] + q["pos.w"][:T] + torch.tensor(sine)
        return h @ q["out.w"] + q["out.b"]

    out, grads = forward_and_grads(net, x, r, mode)
    assert_close(out, expected)
    _, reference = torch_grads(torch_forward, p, r)
    for name in reference:
        assert_close(grads[name], reference[name])


@pytest.mark.parametrize("mode", MODES)
def test_flatten_is_c_order_channels_last(mode, rng):
    net = trainkit.Regressor(
        [dict(shape=(2, 3, 2)), dict(form="flatten", name="flat"), 2], dtype="float64"
    )
    assert net.layers[0].out_shape.width == 12
    randomise(net, rng)
    p = values(net)
    x = rng.normal(size=(4, 2, 3, 2))
    r = rng.normal(size=(4, 2))
    out, grads = forward_and_grads(net, x, r, mode)
    flat = x.reshape(4, -1)
    assert_close(out, flat @ p["out.w"] + p["out.b"])
    assert_close(grads["out.w"], flat.T @ r)


def test_shapes_follow_from_the_list():
    seq = trainkit.Regressor([3, 4, dict(form="lstm", size=2)])
    assert seq.x.ndim == 3 and seq.input_kind == "sequence"
    ff = trainkit.Regressor([3, 4, 2])
    assert ff.x.ndim == 2 and ff.input_kind == "features"
    img = trainkit.Classifier([dict(shape=(8, 8, 1)), dict(form="flatten"), 3])
    assert img.x.ndim == 4 and img.x.type.shape == (None, 8, 8, 1)
    tok = trainkit.Classifier([dict(vocab=20), dict(form="embedding", size=3), 2])
    assert tok.x.dtype == "int32" and tok.output_ndim == 3


def test_default_activations_per_form():
    net = trainkit.Regressor(
        [
            3,
            dict(size=4),
            dict(form="layernorm"),
            dict(size=4, name="t0"),
            dict(form="add", inputs=["hid1", "t0"]),
            dict(form="tied", partner="t0"),
            1,
        ]
    )
    acts = {layer.name: layer.activation for layer in net.layers}
    assert acts == {
        "hid1": "relu",
        "hid2": "linear",
        "t0": "relu",
        "hid4": "linear",
        "hid5": "relu",
        "out": "linear",
    }


def test_save_load_round_trip_of_a_graph(tmp_path, rng):
    net = trainkit.Classifier(
        [
            dict(vocab=9, lengths=True, name="tok"),
            dict(form="embedding", size=4),
            dict(form="position", kind="sine"),
            dict(form="gru", size=4, name="g"),
            dict(form="add", inputs=["hid1", "g"]),
            dict(form="globalmaxpool"),
            2,
        ]
    )
    path = tmp_path / "m.npz"
    net.save(path)
    again = trainkit.load(path)
    assert again.config() == net.config()
    x = rng.integers(0, 9, size=(3, 5)).astype("int32")
    lengths = np.array([5, 2, 3])
    np.testing.assert_array_equal(again.predict_proba(x, lengths), net.predict_proba(x, lengths))
    assert "globalmaxpool" in net.summary() and "(batch, time)" in net.summary()


@pytest.mark.parametrize(
    "layers, message",
    [
        ([3, dict(size=2, kernel=3)], r"layers\[1\]: unknown key 'kernel'; a feedforward layer"),
        (
            [3, dict(form="tied", partner="nope"), 2],
            r"layers\[1\]: tied layer 'hid1': partner 'nope' is not an earlier layer",
        ),
        (
            [3, dict(size=4, name="a"), dict(size=5), dict(form="tied", partner="a")],
            r"layers\[3\]: tied layer 'out': partner 'a' has weight a.w of shape 3x4, so it "
            r"reads 4 features; it gets 5",
        ),
        (
            [3, dict(size=4, inputs=["hid2"]), 5, 2],
            r"layers\[1\]: inputs names 'hid2', an output of a later layer \(layers\[2\]\)",
        ),
        ([3, dict(size=4, inputs=["hidd1"]), 2], r"layers\[1\]: inputs: unknown output 'hidd1'"),
        (
            [dict(vocab=5), dict(form="lstm", size=3), 2],
            r"layers\[1\]: lstm layer 'hid1' cannot read token ids .*embedding",
        ),
        (
            [3, 4, dict(form="add", inputs=["in", "hid1"])],
            r"layers\[2\]: add layer 'out': adds 'in:out' features\(3\) and 'hid1:out' "
            r"features\(4\); the shapes must be equal",
        ),
        ([3, dict(form="add"), 2], r"layers\[1\]: add layer 'hid1': needs inputs="),
        ([3, dict(form="position"), 2], r"layers\[1\]: a learned position layer needs max_length"),
        ([dict(shape=(4, 4)), 2], r"layers\[0\]: shape must be \(height, width, channels\)"),
        ([dict(size=3, vocab=4), 2], r"layers\[0\]: the input entry takes one of size=F"),
        ([dict(size=3, lengths=True), 2], r"layers\[0\]: lengths=True needs sequences"),
        ([3, dict(form="flatten"), dict(form="lstm", size=2)], r"layers\[1\]: flatten layer"),
        ([3, dict(form="embedding", size=2)], r"layers\[1\]: embedding layer 'out' reads"),
    ],
)
def test_bad_layer_lists_fail_in_one_line_naming_the_entry(layers, message):
    with pytest.raises(ValueError, match=message) as info:
        trainkit.Regressor(layers)
    assert "\n" not in str(info.value)


def test_learned_positions_shorter_than_the_data_fail_before_compiling(rng):
    net = trainkit.Regressor([2, dict(form="position", max_length=4), dict(form="lstm", size=1)])
    with pytest.raises(ValueError, match=r"layers\[1\]: position layer 'hid1': max_length=4"):
        net.predict(rng.normal(size=(2, 6, 2)).astype("float32"))


def test_token_ids_out_of_range_name_the_array_and_position():
    net = trainkit.Classifier([dict(vocab=5), dict(form="embedding", size=2), 2])
    x = np.array([[0, 1, 2], [3, 4, 4], [1, 7, -1]])
    with pytest.raises(ValueError, match=r"x: array 0 \('x'\) has token ids out of range: "):
        net.predict(x)
    with pytest.raises(ValueError, match=r"found 7 at x\[2, 1\], allowed 0..4"):
        net.predict(x)
    y = np.zeros((3, 3), "int64")
    with pytest.raises(ValueError, match=r"train: array 0 \('x'\) has token ids out of range"):
        net.train([x, y], max_updates=1, progress=False, log=False)


def test_a_model_too_large_for_memory_is_one_line_before_allocating():
    with pytest.raises(ValueError, match=r"^layers: the parameters would take [\d.]+ [GT]B") as e:
        trainkit.Regressor([4, 10**12, 2])
    assert "\n" not in str(e.value)


def test_training_that_cannot_fit_is_refused_in_one_line(monkeypatch):
    from trainkit.models import graphbuild

    net = trainkit.Regressor([4, 100, 2])  # 702 float32 parameters: 2,808 bytes
    monkeypatch.setattr(graphbuild, "available_memory", lambda: 20_000)
    data = [np.ones((4, 4)), np.ones((4, 2))]
    with pytest.raises(ValueError, match=r"^layers: training would need about 28.1 kB \(10 times"):
        net.train(data, max_updates=1, progress=False, log=False)
