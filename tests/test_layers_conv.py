"""Convolution and pooling layers in a network: forward and gradients against torch, lengths.

With lengths, every real step of a padded batch must equal the layer's
output on the unpadded sequence: the torch reference runs each example on
its own real steps; the weights ``r`` of the summed output are zero at
padded steps, so the gradients compare too. float64 to 1e-10.
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

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _conv1d(h, w, b, stride=1, padding="valid", dilation=1):
    """(time, n_in) -> (time', F) with torch; w (K, n_in, F)."""
    x = h.T[None]
    weight = w.permute(2, 1, 0)
    total = (w.shape[0] - 1) * dilation
    if padding == "causal":
        x = F.pad(x, (total, 0))
    elif padding == "same":  # torch's padding='same' split, without its even-kernel warning
        x = F.pad(x, (total // 2, total - total // 2))
    return F.conv1d(x, weight, b, stride=stride, dilation=dilation)[0].T


def _pool1d(h, pool, mode):
    fn = F.max_pool1d if mode == "max" else F.avg_pool1d
    return fn(h.T[None], pool)[0].T


def _padded(rows, T):
    out = torch.zeros((len(rows), T, rows[0].shape[1]), dtype=torch.float64)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out


@pytest.mark.parametrize("mode", ["JAX"])
def test_conv1d_and_pooling_with_lengths_match_torch(mode, rng):
    net = trainkit.Regressor(
        [
            dict(size=3, lengths=True),
            dict(form="conv1d", size=3, kernel=2, dilation=2, padding="causal", name="c3"),
            dict(form="conv1d", size=4, kernel=3, stride=2, activation="tanh", name="c1"),
            dict(form="maxpool1d", pool=2, name="p1"),
            dict(form="conv1d", size=3, kernel=2, padding="same", activation="linear", name="c2"),
            dict(form="avgpool1d", pool=2, name="p2"),
            dict(form="conv1d", size=2, kernel=1, activation="linear"),
        ],
        dtype="float64",
    )
    randomise(net, rng)
    T = 21
    x = rng.normal(size=(3, T, 3))
    lengths = np.array([21, 16, 9])
    # real output steps: causal -> conv valid k3 s2 -> pool 2 -> same -> pool 2
    n = lambda L: ((L - 3) // 2 + 1) // 2 // 2  # noqa: E731
    T_out = n(T)
    out_lengths = [n(L) for L in lengths]
    assert net.structure.check_time(T) is None
    r = rng.normal(size=(3, T_out, 2))
    for i, L in enumerate(out_lengths):
        r[i, L:] = 0

    def forward(q):
        rows = []
        for i, L in enumerate(lengths):
            h = torch.tensor(x[i, :L])
            h = torch.relu(_conv1d(h, q["c3.w"], q["c3.b"], padding="causal", dilation=2))
            h = torch.tanh(_conv1d(h, q["c1.w"], q["c1.b"], stride=2))
            h = _pool1d(h, 2, "max")
            h = _conv1d(h, q["c2.w"], q["c2.b"], padding="same")
            h = _pool1d(h, 2, "avg")
            rows.append(_conv1d(h, q["out.w"], q["out.b"]))
        return _padded(rows, T_out)

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, mode, lengths=lengths)
    assert out.shape == (3, T_out, 2)
    for i, L in enumerate(out_lengths):
        assert_close(out[i, :L], expected[i, :L])
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


@pytest.mark.parametrize("mode", ["JAX"])  # Numba: test_small_conv_nets_match_torch_on_numba
def test_global_pooling_over_real_steps_matches_torch(mode, rng):
    net = trainkit.Regressor(
        [
            dict(size=2, lengths=True),
            dict(form="conv1d", size=3, kernel=2, activation="tanh", name="c"),
            dict(form="globalmaxpool", name="gmax"),
            dict(form="globalavgpool", name="gavg", inputs=["c"]),
            dict(size=2, inputs=["gmax", "gavg"]),
        ],
        dtype="float64",
    )
    randomise(net, rng)
    x = rng.normal(size=(3, 7, 2))
    lengths = np.array([7, 4, 2])
    r = rng.normal(size=(3, 2))

    def forward(q):
        rows = []
        for i, L in enumerate(lengths):
            h = torch.tanh(_conv1d(torch.tensor(x[i, :L]), q["c.w"], q["c.b"]))
            pooled = torch.cat([h.max(0).values, h.mean(0)])
            rows.append(pooled @ q["out.w"] + q["out.b"])
        return torch.stack(rows)

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, mode, lengths=lengths)
    assert_close(out, expected)
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


@pytest.mark.parametrize("mode", ["JAX"])
def test_conv2d_and_pooling_match_torch(mode, rng):
    net = trainkit.Classifier(
        [
            dict(shape=(7, 6, 2)),
            dict(form="conv2d", size=3, kernel=(3, 2), stride=(2, 1), name="c1"),
            dict(form="maxpool2d", pool=(1, 2), name="p1"),
            dict(form="conv2d", size=4, kernel=3, padding="same", activation="tanh", name="c2"),
            dict(form="avgpool2d", pool=2, name="p2"),
            dict(form="globalmaxpool", name="g", inputs=["c2"]),
            dict(form="flatten", name="f", inputs=["p2"]),
            dict(size=3, inputs=["f", "g"]),
        ],
        dtype="float64",
        loss="xent",
    )
    shapes = [layer.out_shape.dims for layer in net.layers]
    assert shapes[:5] == [(3, 5, 3), (3, 2, 3), (3, 2, 4), (1, 1, 4), (4,)]
    randomise(net, rng)
    x = rng.normal(size=(4, 7, 6, 2))
    r = rng.normal(size=(4, 3))

    def conv(h, w, b, stride=1, padding=0):
        return F.conv2d(h, w.permute(3, 2, 0, 1), b, stride=stride, padding=padding)

    assert net.layers[2].kernel == (3, 3)  # odd: torch's 'same' pads both sides alike

    def forward(q):
        h = torch.tensor(x).permute(0, 3, 1, 2)
        h = torch.relu(conv(h, q["c1.w"], q["c1.b"], stride=(2, 1)))
        h = F.max_pool2d(h, (1, 2))
        c2 = torch.tanh(conv(h, q["c2.w"], q["c2.b"], padding="same"))
        p2 = F.avg_pool2d(c2, 2)
        g = c2.amax(dim=(2, 3))
        f = p2.permute(0, 2, 3, 1).reshape(len(x), -1)  # channels last, C order
        return torch.softmax(torch.cat([f, g], 1) @ q["out.w"] + q["out.b"], dim=1)

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, mode)
    assert_close(out, expected)
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


@pytest.mark.numba
def test_small_conv_nets_match_torch_on_numba(rng):
    """Numba compiles each op on its own (minutes for the networks above on a cold cache):
    one small 1-D net with lengths and one 2-D net."""
    net = trainkit.Regressor(
        [
            dict(size=2, lengths=True),
            dict(form="conv1d", size=3, kernel=3, stride=2, activation="tanh", name="c"),
            dict(form="avgpool1d", pool=2),
            dict(form="globalmaxpool"),
            1,
        ],
        dtype="float64",
    )
    randomise(net, rng)
    x = rng.normal(size=(3, 11, 2))
    lengths = np.array([11, 9, 7])
    r = rng.normal(size=(3, 1))

    def forward(q):
        rows = []
        for i, L in enumerate(lengths):
            h = torch.tanh(_conv1d(torch.tensor(x[i, :L]), q["c.w"], q["c.b"], stride=2))
            rows.append(_pool1d(h, 2, "avg").max(0).values @ q["out.w"] + q["out.b"])
        return torch.stack(rows)

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, "NUMBA", lengths=lengths)
    assert_close(out, expected)
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])

    net = trainkit.Regressor(
        [dict(shape=(5, 4, 2)), dict(form="conv2d", size=2, kernel=2, name="c"),
         dict(form="maxpool2d", pool=2), dict(form="flatten"), 1],
        dtype="float64",
    )  # fmt: skip
    randomise(net, rng)
    x = rng.normal(size=(2, 5, 4, 2))
    r = rng.normal(size=(2, 1))

    def forward2(q):
        h = torch.tensor(x).permute(0, 3, 1, 2)
        h = torch.relu(F.conv2d(h, q["c.w"].permute(3, 2, 0, 1), q["c.b"]))
        h = F.max_pool2d(h, 2).permute(0, 2, 3, 1).reshape(2, -1)
        return h @ q["out.w"] + q["out.b"]

    expected, grads_expected = torch_grads(forward2, values(net), r)
    out, grads = forward_and_grads(net, x, r, "NUMBA")
    assert_close(out, expected)
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


@pytest.mark.parametrize(
    "layers, T, message",
    [
        (
            [2, dict(form="conv1d", size=3, kernel=5), dict(form="globalavgpool"), 2],
            4,
            r"layers\[1\]: conv1d layer 'hid1': kernel 5 is longer than the 4 time step",
        ),
        (
            [2, dict(form="conv1d", size=3, kernel=2), dict(form="maxpool1d", pool=4), 1],
            4,
            r"layers\[2\]: maxpool1d layer 'hid2': pool 4 is longer than the 3 time step",
        ),
        (
            [2, dict(form="conv1d", size=3, kernel=3, dilation=3), dict(form="lstm", size=1)],
            6,
            r"layers\[1\]: conv1d layer 'hid1': kernel 3 \(spanning 7 steps\) is longer",
        ),
    ],
)
def test_windows_longer_than_the_data_fail_before_compiling(layers, T, message, rng):
    net = trainkit.Regressor(layers)
    x = rng.normal(size=(2, T, 2)).astype("float32")
    with pytest.raises(ValueError, match=message):
        net.predict(x)
    y = np.zeros((2, 1), "float32")  # the lengths are checked before the targets
    with pytest.raises(ValueError, match=message):
        net.train([x, y], max_updates=1, progress=False, log=False)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([2, dict(form="conv1d", size=3), 1], r"layers\[1\]: a conv1d layer needs kernel="),
        (
            [2, dict(form="conv1d", size=3, kernel=3, stride=2, padding="same"), 1],
            r"layers\[1\]: padding='same' needs stride 1",
        ),
        (
            [2, dict(form="conv1d", size=3, kernel=3, padding="full"), 1],
            r"layers\[1\]: padding must be 'valid', 'same' or 'causal', got 'full'",
        ),
        (
            [dict(shape=(4, 4, 1)), dict(form="conv2d", size=2, kernel=5), 1],
            r"layers\[1\]: conv2d layer 'hid1': kernel 5x5 is larger than its 4x4 input",
        ),
        (
            [dict(shape=(4, 4, 1)), dict(form="maxpool2d", pool=(2, 5)), 1],
            r"layers\[1\]: maxpool2d layer 'hid1': pool 2x5 is larger than its 4x4 input",
        ),
        (
            [2, dict(form="conv2d", size=2, kernel=2), 1],
            r"layers\[1\]: conv2d layer 'hid1' reads images",
        ),
        (
            [2, dict(form="maxpool1d", pool=2, size=3), 1],
            r"layers\[1\]: maxpool1d layer 'hid1': size=3",
        ),
    ],
)
def test_bad_convolution_entries_fail_naming_the_entry(layers, message):
    with pytest.raises(ValueError, match=message):
        trainkit.Regressor(layers)
