"""Layer and batch normalisation: forward and gradients against torch; running statistics.

Batch normalisation's training graph normalises with the batch's statistics
(real steps only with lengths) and updates the running mean and unbiased
variance once per update (torch's ``BatchNorm1d``, momentum 0.1); the clean
graph (validation, predict, evaluate, score) uses the running ones. They are
state, not parameters: saved in model files and checkpoints, never trained
or penalised.
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
QUIET = dict(progress=False, log=False)


@pytest.mark.parametrize("mode", MODES)
def test_layernorm_matches_torch_with_its_norm_output(mode, rng):
    net = trainkit.Regressor(
        [3, dict(size=4, name="h"), dict(form="layernorm", name="ln", activation="tanh"), 2],
        dtype="float64",
    )
    assert "ln:norm" in net.outputs and "ln:pre" in net.outputs
    randomise(net, rng)
    x = rng.normal(size=(5, 3))
    r = rng.normal(size=(5, 2))

    def forward(q):
        h = torch.relu(torch.tensor(x) @ q["h.w"] + q["h.b"])
        n = torch.tanh(F.layer_norm(h, (4,), q["ln.g"], q["ln.b"], eps=1e-5))
        return n @ q["out.w"] + q["out.b"]

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, mode)
    assert_close(out, expected)
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


def _bn_net(**entry):
    return trainkit.Regressor(
        [
            dict(size=3, lengths=True),
            dict(form="conv1d", size=4, kernel=2, activation="linear", name="c"),
            dict(form="batchnorm", name="bn", activation="relu", **entry),
            dict(size=2),
        ],
        dtype="float64",
    )


@pytest.mark.parametrize("mode", MODES)
def test_batchnorm_training_graph_uses_real_steps_only(mode, rng):
    net = _bn_net()
    assert sorted(net.state) == ["bn.running_mean", "bn.running_var"]
    assert not any(name.startswith("bn.running") for name in net.params)
    randomise(net, rng)
    x = rng.normal(size=(3, 6, 3))
    lengths = np.array([6, 3, 4])
    r = rng.normal(size=(3, 5, 2))
    real = [L - 1 for L in lengths]
    for i, L in enumerate(real):
        r[i, L:] = 0

    def conv(h, q):
        return torch.stack([h[:-1] @ q["c.w"][0] + h[1:] @ q["c.w"][1]]).squeeze(0) + q["c.b"]

    def forward(q):
        hs = [conv(torch.tensor(x[i, :L]), q) for i, L in enumerate(lengths)]
        steps = torch.cat(hs)  # every real step of the batch
        mean, var = steps.mean(0), steps.var(0, unbiased=False)
        out = torch.zeros((3, 5, 2), dtype=torch.float64)
        for i, h in enumerate(hs):
            n = torch.relu((h - mean) / torch.sqrt(var + 1e-5) * q["bn.g"] + q["bn.b"])
            out[i, : len(h)] = n @ q["out.w"] + q["out.b"]
        return out

    expected, grads_expected = torch_grads(forward, values(net), r)
    out, grads = forward_and_grads(net, x, r, mode, lengths=lengths, training=True)
    for i, L in enumerate(real):
        assert_close(out[i, :L], expected[i, :L])
    for name in grads_expected:
        assert_close(grads[name], grads_expected[name])


def test_running_statistics_follow_torch_and_serve_prediction(rng, tmp_path):
    net = trainkit.Regressor(
        [3, dict(form="batchnorm", name="bn", momentum=0.2), 1], dtype="float64"
    )
    bn = torch.nn.BatchNorm1d(3, momentum=0.2, dtype=torch.float64)
    x = rng.normal(2.0, 3.0, size=(8, 3))
    y = rng.normal(size=(8, 1))
    net.train([x, y], algo="sgd", learning_rate=0.0, batch_size=8, max_updates=3, **QUIET)
    for _ in range(3):
        bn(torch.tensor(x))
    assert_close(net.state["bn.running_mean"].get_value(), bn.running_mean.numpy())
    assert_close(net.state["bn.running_var"].get_value(), bn.running_var.numpy())
    # the clean graph (predict) uses the running statistics
    bn.eval()
    w, b = net.params["out.w"].get_value(), net.params["out.b"].get_value()
    expected = bn(torch.tensor(x)).detach().numpy() @ w + b
    assert_close(net.predict(x), expected)
    # model files keep them
    net.save(tmp_path / "m.npz")
    again = trainkit.load(tmp_path / "m.npz")
    for name, v in net.state.items():
        np.testing.assert_array_equal(again.state[name].get_value(), v.get_value())
    assert "bn.running_mean" in net.summary()


def test_batchnorm_state_is_not_penalised_or_trained(rng):
    net = trainkit.Regressor([3, dict(form="batchnorm", name="bn"), 1], dtype="float64")
    with pytest.raises(ValueError, match="bn.running"):
        net.train(
            [np.ones((4, 3)), np.ones((4, 1))], weight_l2=dict(weight=1, pattern="bn.running*")
        )


def test_checkpoint_resume_with_batchnorm_is_bitwise(tmp_path, rng):
    x = rng.normal(size=(64, 5, 2))
    y = rng.integers(0, 2, size=64)

    def run(max_updates, **kwargs):
        net = trainkit.Classifier(
            [
                2,
                dict(form="conv1d", size=3, kernel=2, activation="linear"),
                dict(form="batchnorm", activation="relu"),
                dict(form="globalavgpool"),
                2,
            ]
        )
        net.train(
            [x, y], algo="adam", batch_size=16, max_updates=max_updates, seed=3, **QUIET, **kwargs
        )
        return net

    whole = run(8)
    ckpt = tmp_path / "c.npz"
    run(4, save_progress=str(ckpt), save_every=4)
    resumed = run(8, resume=str(ckpt))
    for name, v in [*whole.params.items(), *whole.state.items()]:
        other = {**resumed.params, **resumed.state}[name].get_value()
        np.testing.assert_array_equal(v.get_value(), other)


def test_two_batchnorm_layers_with_several_processes_are_refused_before_compiling():
    """One batchnorm layer all-reduces its statistics (tests/test_batchnorm_parallel.py)."""
    from trainkit.distributed import Identity

    class TwoRanks(Identity):  # looks like one of two processes; never communicates here
        size = 2

    net = trainkit.Regressor([3, dict(form="batchnorm"), (4, "tanh"), dict(form="batchnorm"), 1])
    data = [np.ones((4, 3), "float32"), np.ones((4, 1), "float32")]
    with pytest.raises(ValueError, match=r"^data_parallel: 2 batchnorm layers with several"):
        net.train(data, data_parallel=TwoRanks(), **QUIET)


def test_batchnorm_with_dropout_and_several_processes_is_refused_before_compiling():
    from trainkit.distributed import Identity

    class TwoRanks(Identity):
        size = 2

    net = trainkit.Regressor([3, dict(form="batchnorm"), 1])
    data = [np.ones((4, 3), "float32"), np.ones((4, 1), "float32")]
    with pytest.raises(ValueError, match=r"^data_parallel: batchnorm with several processes and"):
        net.train(data, data_parallel=TwoRanks(), input_dropout=0.2, **QUIET)
