"""Layer lists, naming, and each layer form's forward pass against numpy."""

import numpy as np
import pytensor
import pytest

import trainkit
from trainkit.layers import glorot, orthogonal

RNG = np.random.default_rng(3)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def values(net):
    return {k: v.get_value() for k, v in net.params.items()}


def test_default_names_and_marks():
    net = trainkit.Regressor([3, 4, (5, "tanh"), 2])
    g = net.graph()
    assert list(g.outputs) == [
        "in:out",
        "hid1:pre",
        "hid1:out",
        "hid2:pre",
        "hid2:out",
        "out:pre",
        "out:out",
    ]
    assert list(g.params) == ["hid1.w", "hid1.b", "hid2.w", "hid2.b", "out.w", "out.b"]
    assert g.hidden == ("hid1:out", "hid2:out") and g.recurrent == ()
    assert [layer.activation for layer in net.layers] == ["relu", "tanh", "linear"]
    assert g.output == "out:out"


def test_recurrent_names_marks_and_shapes():
    net = trainkit.Classifier(
        [
            3,
            dict(size=4, form="lstm", name="enc"),
            dict(size=5, form="gru", return_sequences=False),
            2,
        ]
    )
    g = net.graph()
    assert list(g.outputs) == [
        "in:out",
        "enc:out",
        "enc:cell",
        "hid2:out",
        "hid2:last",
        "out:pre",
        "out:out",
    ]
    assert g.recurrent == ("enc:out", "hid2:out")
    assert g.hidden == ("enc:out", "hid2:out")
    shapes = {k: v.get_value().shape for k, v in net.params.items()}
    assert shapes == {
        "enc.xh": (3, 16),
        "enc.hh": (4, 16),
        "enc.b": (16,),
        "hid2.xh": (4, 15),
        "hid2.hh": (5, 15),
        "hid2.b": (15,),
        "out.w": (5, 2),
        "out.b": (2,),
    }
    assert net.x.ndim == 3 and net.output_ndim == 2


def test_parameters_are_float32_by_default_and_float64_on_request():
    assert {p.dtype for p in trainkit.Regressor([2, 3, 1]).params.values()} == {"float32"}
    with pytensor.config.change_flags(warn_float64="ignore"):
        net = trainkit.Regressor([2, 3, 1], dtype="float64")
        assert {p.dtype for p in net.params.values()} == {"float64"}


def test_initialisation():
    rng = np.random.default_rng(0)
    w = glorot(rng, 30, 20, "float32")
    assert np.abs(w).max() <= np.sqrt(6 / 50) and w.std() > 0.5 * np.sqrt(2 / 50)
    q = orthogonal(rng, 6, "float64")
    np.testing.assert_allclose(q @ q.T, np.eye(6), atol=1e-12)
    lstm = trainkit.Regressor([2, dict(size=3, form="lstm"), 1]).params["hid1.b"].get_value()
    np.testing.assert_array_equal(lstm, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    hh = trainkit.Regressor([2, dict(size=3, form="gru"), 1]).params["hid1.hh"].get_value()
    for k in range(3):
        block = hh[:, 3 * k : 3 * k + 3].astype(np.float64)
        np.testing.assert_allclose(block @ block.T, np.eye(3), atol=1e-5)


def test_same_seed_same_weights():
    a, b = trainkit.Regressor([2, 3, 1], seed=5), trainkit.Regressor([2, 3, 1], seed=5)
    c = trainkit.Regressor([2, 3, 1], seed=6)
    assert all(np.array_equal(values(a)[k], values(b)[k]) for k in values(a))
    assert not np.array_equal(values(a)["hid1.w"], values(c)["hid1.w"])


def test_feedforward_forward_matches_numpy():
    net = trainkit.Regressor([3, (4, "tanh"), (2, "sigmoid")])
    p = values(net)
    x = RNG.normal(size=(5, 3)).astype("float32")
    h = np.tanh(x @ p["hid1.w"] + p["hid1.b"])
    np.testing.assert_allclose(net.predict(x), sigmoid(h @ p["out.w"] + p["out.b"]), rtol=1e-5)


def np_rnn(x, p, name):
    h = np.zeros((x.shape[0], p[f"{name}.hh"].shape[0]))
    out = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p[f"{name}.xh"] + h @ p[f"{name}.hh"] + p[f"{name}.b"])
        out.append(h)
    return np.stack(out, 1)


def np_lstm(x, p, name):
    n = p[f"{name}.hh"].shape[0]
    h = np.zeros((x.shape[0], n))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ p[f"{name}.xh"] + h @ p[f"{name}.hh"] + p[f"{name}.b"]
        i, f, g, o = z[:, :n], z[:, n : 2 * n], z[:, 2 * n : 3 * n], z[:, 3 * n :]
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def np_gru(x, p, name):
    n = p[f"{name}.hh"].shape[0]
    wx, wh, b = p[f"{name}.xh"], p[f"{name}.hh"], p[f"{name}.b"]
    h = np.zeros((x.shape[0], n))
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        z = sigmoid(xt @ wx[:, :n] + h @ wh[:, :n] + b[:n])
        r = sigmoid(xt @ wx[:, n : 2 * n] + h @ wh[:, n : 2 * n] + b[n : 2 * n])
        cand = np.tanh(xt @ wx[:, 2 * n :] + (r * h) @ wh[:, 2 * n :] + b[2 * n :])
        h = (1 - z) * cand + z * h
        out.append(h)
    return np.stack(out, 1)


@pytest.mark.parametrize("form, reference", [("rnn", np_rnn), ("lstm", np_lstm), ("gru", np_gru)])
def test_recurrent_forward_matches_numpy(form, reference):
    net = trainkit.Regressor([3, dict(size=4, form=form), 2])
    p = {k: v.astype(np.float64) for k, v in values(net).items()}
    # move biases off zero so every term of the formula matters
    rng = np.random.default_rng(1)
    for name in ("hid1.b", "out.b"):
        p[name] = p[name] + rng.normal(scale=0.3, size=p[name].shape)
        net.params[name].set_value(p[name].astype("float32"))
    x = RNG.normal(size=(2, 4, 3)).astype("float32")
    states = reference(x.astype(np.float64), p, "hid1")
    expected = states @ p["out.w"] + p["out.b"]
    np.testing.assert_allclose(net.predict(x), expected, rtol=1e-4, atol=1e-5)


def test_return_sequences_false_passes_the_last_step():
    net = trainkit.Regressor([3, dict(size=4, form="rnn", return_sequences=False), 2])
    p = {k: v.astype(np.float64) for k, v in values(net).items()}
    x = RNG.normal(size=(2, 5, 3)).astype("float32")
    last = np_rnn(x.astype(np.float64), p, "hid1")[:, -1]
    np.testing.assert_allclose(net.predict(x), last @ p["out.w"] + p["out.b"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "layers, error, message",
    [
        ([3], ValueError, r"layers: expected a list of at least an input size and an output layer"),
        ([0, 2], ValueError, r"layers\[0\]: size must be a positive int, got 0"),
        ([3, -1, 2], ValueError, r"layers\[1\]: size must be a positive int, got -1"),
        (
            [3, dict(size=4, form="lstmm"), 2],
            ValueError,
            r"layers\[1\]: form: unknown form 'lstmm'; choose from add, attention, .* \(closest: lstm\)",
        ),
        (
            [3, dict(size=4, activaton="tanh"), 2],
            ValueError,
            r"layers\[1\]: unknown key 'activaton'; a feedforward layer takes .* \(closest: activation\)",
        ),
        (
            [3, (4, "tanhh"), 2],
            ValueError,
            r"layers\[1\]: activation: unknown activation 'tanhh'.*\(closest: tanh\)",
        ),
        (
            [3, dict(size=4, name="out"), 2],
            ValueError,
            r"layers\[2\]: layer name 'out' is already used",
        ),
        (
            [3, dict(size=4, name="h:1"), 2],
            ValueError,
            r"layers\[1\]: layer name must be .* got 'h:1'",
        ),
        (
            [3, "four", 2],
            TypeError,
            r"layers\[1\]: expected a size, a \(size, activation\) tuple or a dict",
        ),
        (
            [3, dict(size=4, form="rnn", return_sequences=False), dict(size=2, form="rnn")],
            ValueError,
            r"layers\[2\]: rnn layer 'out' reads sequences \(batch, time, features\); its input 'hid1:last'",
        ),
        (
            [3, dict(size=4, return_sequences=False), 2],
            ValueError,
            r"layers\[1\]: unknown key 'return_sequences'; a feedforward layer takes",
        ),
    ],
)
def test_layer_list_errors(layers, error, message):
    with pytest.raises(error, match=message):
        trainkit.Regressor(layers)


def test_model_argument_errors():
    with pytest.raises(
        ValueError, match=r"loss: unknown loss 'mss' for a Regressor.*\(closest: mse\)"
    ):
        trainkit.Regressor([2, 1], loss="mss")
    with pytest.raises(ValueError, match=r"loss: Classifier: 'xent' needs a softmax output layer"):
        trainkit.Classifier([2, (3, "linear")])
    with pytest.raises(
        ValueError, match="layers: an Autoencoder's output layer must match the input"
    ):
        trainkit.Autoencoder([4, 2, 3])
    with pytest.raises(ValueError, match="dtype: must be 'float32' or 'float64'"):
        trainkit.Regressor([2, 1], dtype="int32")
