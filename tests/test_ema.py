"""``ema``: the moving average of the parameters against numpy, torch and a resumed run.

The model is linear, the optimizer plain SGD on the whole batch, so the
trajectory of the parameters and of their average can be written down in
numpy (float64): w_t = w_{t-1} - lr * 2/n X^T (X w_{t-1} - y) and
a_t = a_{t-1} + (1 - d) (w_t - a_{t-1}), a_0 = w_0. The network is float32
(a float64 one would switch JAX to 64-bit floats for the whole process), so
agreement is to float32 rounding; the average and the raw parameters differ
by far more.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import QUIET

import regularizers
from trainkit import Trainer

LR, DECAY, STEPS = 0.05, 0.8, 8


def problem():
    """Float32 data, and the starting parameters (their float32 values, in float64)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(16, 3)).astype("float32")
    y = (X @ np.array([1.0, -2.0, 0.5], "float32")).astype("float32")
    return X, y, rng.normal(size=3).astype("float32").astype("float64")


def trainer(w0, valid_y=None, **kwargs):
    x, y = pt.matrix("x"), pt.vector("y")
    w = pytensor.shared(np.array(w0, dtype="float32"), name="out.w")
    graph = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    options = dict(
        algo="sgd",
        learning_rate=LR,
        ema=DECAY,
        batch_size=16,
        shuffle=False,
        validate_every=1,
        max_updates=STEPS,
        patience=None,
        **QUIET,
    )
    options.update(kwargs)
    return Trainer(graph, pt.mean((x @ w - y) ** 2), [x, y], **options), w


def numpy_trajectory(X, y, w0, steps=STEPS):
    """The parameters and their average after each update (index 0: the start)."""
    X, y = X.astype("float64"), y.astype("float64")
    ws, averages = [np.array(w0)], [np.array(w0)]
    for _ in range(steps):
        w = ws[-1] - LR * 2 / len(X) * X.T @ (X @ ws[-1] - y)
        ws.append(w)
        averages.append(averages[-1] + (1 - DECAY) * (w - averages[-1]))
    return ws, averages


def mse(X, y, w):
    return float(np.mean((X.astype("float64") @ w - y) ** 2))


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_validation_and_the_result_use_the_numpy_average(accumulate):
    X, y, w0 = problem()
    t, w = trainer(w0, restore_best=False, accumulate=accumulate, batch_size=16 // accumulate)
    pairs = list(t.itertrain([X, y]))
    ws, averages = numpy_trajectory(X, y, w0)
    assert [tm["step"] for tm, _ in pairs] == list(range(1, STEPS + 1))
    for (tm, vm), step in zip(pairs, range(1, STEPS + 1), strict=True):
        # validation evaluates the average; the training loss is the raw parameters'
        assert vm["loss"] == pytest.approx(mse(X, y, averages[step]), rel=1e-5)
        assert tm["loss"] == pytest.approx(mse(X, y, ws[step - 1]), rel=1e-5)
    close(w.get_value(), averages[STEPS])
    close(t.ema.variables["out.w"].get_value(), averages[STEPS])
    assert t.state_variables["out.w/ema"] is t.ema.variables["out.w"]


def test_restore_best_puts_back_the_best_average():
    X, y, w0 = problem()
    w0 = np.zeros(3)
    # validation targets half-way: the average passes their optimum mid-run, then leaves it
    valid = [X, y / 2]
    t, w = trainer(w0, max_updates=40, validate_every=2)
    pairs = list(t.itertrain([X, y], valid))
    _, averages = numpy_trajectory(X, y, w0, 40)
    losses = {tm["step"]: vm["loss"] for tm, vm in pairs}
    best = min(losses, key=losses.get)
    assert 2 < best < 40 and t.restored_step == best == t.best_step
    close(w.get_value(), averages[best])
    close(t.best_params["out.w"], averages[best])


def test_the_average_is_torchs_averaged_model():
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    X, y, w0 = problem()
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w0[None, :], dtype=torch.float32))
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(DECAY))
    average.update_parameters(model)  # the average starts at the initial parameters
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for _ in range(STEPS):
        optimizer.zero_grad()
        torch.mean((model(Xt)[:, 0] - yt) ** 2).backward()
        optimizer.step()
        average.update_parameters(model)
    t, w = trainer(w0, restore_best=False, validate_every=STEPS)
    t.train([X, y])
    expected = average.module.weight.detach().numpy()[0]
    close(w.get_value(), expected)


def test_a_skipped_update_leaves_the_average_alone():
    X, y, w0 = problem()
    X = X.copy()
    t, w = trainer(w0, restore_best=False, nan_policy="skip", batch_size=8, max_updates=2)
    X[8] = np.nan  # the second batch is not finite
    t.train([X, y])
    assert t.skipped == 1
    X8, y8 = X[:8].astype("float64"), y[:8].astype("float64")
    first = w0 - LR * 2 / 8 * X8.T @ (X8 @ w0 - y8)
    close(w.get_value(), w0 + (1 - DECAY) * (first - w0))


def test_ema_must_be_a_decay_in_0_1():
    X, y, w0 = problem()
    for bad in (1.0, 0, -0.5, "0.9"):
        with pytest.raises(ValueError, match=r"ema: must be a number in \(0, 1\) or None, got"):
            trainer(w0, ema=bad)


def test_resume_with_ema_is_bitwise():
    from test_trainer_resume import N, assert_same_state, run, state

    _, _, reference = run(ema=0.9)
    assert "hid1.w/ema" in reference.state_variables
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/run.ckpt"
        run(max_updates=7, save_progress=path, ema=0.9)
        net, _, resumed = run(resume=path, ema=0.9)
    assert resumed.step == reference.step == N
    assert_same_state(state(resumed), state(reference))
    for name, p in net.params.items():
        assert np.array_equal(p.get_value(), reference.graph.params[name].get_value()), name
