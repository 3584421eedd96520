"""The learning-rate range test: its rates, smoothing, stop and suggestion against numpy;
the state it leaves bitwise as it found it; ``trainkit lr-find``."""

import json

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import QUIET

import regularizers
import trainkit
from trainkit.training.lr_finder import find_learning_rate, suggest


def problem():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(32, 3)).astype("float32")
    # noisy targets: the loss stays well above float32's rounding of it
    y = (X @ np.array([1.0, -2.0, 0.5], "float32") + rng.normal(size=32)).astype("float32")
    return X, y, rng.normal(size=3).astype("float32")


def linear_trainer(w0, **kwargs):
    x, y = pt.matrix("x"), pt.vector("y")
    w = pytensor.shared(w0.copy(), name="out.w")
    graph = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    options = dict(algo="sgd", batch_size=32, shuffle=False, **QUIET)
    options.update(kwargs)
    return trainkit.Trainer(graph, pt.mean((x @ w - y) ** 2), [x, y], **options), w


def test_rates_losses_stop_and_suggestion_follow_numpy():
    X, y, w0 = problem()
    t, w = linear_trainer(w0)
    found = find_learning_rate(t, [X, y], min_lr=1e-4, max_lr=100.0, num_updates=60)
    # numpy: plain SGD on the whole batch at the rate of each update
    Xd, yd = X.astype("float64"), y.astype("float64")
    weights, average, best = w0.astype("float64"), 0.0, np.inf
    rates, raw, smoothed, stop = [], [], [], None
    for i in range(60):
        rate = 1e-4 * (100.0 / 1e-4) ** (i / 60)
        loss = np.mean((Xd @ weights - yd) ** 2)
        weights = weights - rate * 2 / len(X) * Xd.T @ (Xd @ weights - yd)
        average = 0.98 * average + 0.02 * loss
        rates.append(rate), raw.append(loss), smoothed.append(average / (1 - 0.98 ** (i + 1)))
        if not np.isfinite(loss) or (i > 0 and smoothed[-1] > 4 * best):
            stop = i
            break
        best = min(best, smoothed[-1])
    assert stop is not None and len(found.rates) == stop + 1
    np.testing.assert_allclose(found.rates, rates, rtol=1e-12)
    # float32 against float64: close until the divergence, which grows from rounding
    np.testing.assert_allclose(found.raw_losses[:-3], raw[:-3], rtol=2e-4)
    np.testing.assert_allclose(found.raw_losses, raw, rtol=2e-2)
    np.testing.assert_allclose(found.losses, smoothed, rtol=2e-2)
    assert found.stop_reason.startswith("the smoothed loss exceeded 4 times its lowest")
    slopes = np.gradient(np.array(smoothed[10:-1]), np.log(rates[10:-1]))
    assert found.suggestion == rates[10 + int(np.argmin(slopes))]
    assert np.array_equal(w.get_value(), w0)


def test_the_state_is_left_bitwise_and_training_goes_on_as_without_the_test(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    data = [X, np.tanh(X[:, :2])]
    options = dict(
        algo="adam",
        learning_rate=0.01,
        batch_size=8,
        hidden_dropout=0.3,
        accumulate=2,
        ema=0.9,
        max_updates=4,
        **QUIET,
    )
    runs = []
    for with_test in (False, True):
        net = trainkit.Regressor([3, (4, "tanh"), 2])
        net.train(data, **options)  # optimizer state, generators and averages have moved
        t = net.trainer
        trainkit.training.state.as_numpy(t)
        before = {
            n: (v.get_value().bit_generator.state if n.endswith("rng") else np.array(v.get_value()))
            for n, v in t.state_variables.items()
        }
        if with_test:
            found = find_learning_rate(t, data, num_updates=30, max_lr=100.0)
            assert not found.stop_reason.startswith("num_updates")  # the loss blew up
            after = {
                n: (v.get_value().bit_generator.state if n.endswith("rng") else v.get_value())
                for n, v in t.state_variables.items()
            }
            assert list(after) == list(before)
            assert any(n.endswith("adam_m") for n in after) and any(
                n.endswith("rng") for n in after
            )
            for name, value in before.items():
                if isinstance(value, dict):
                    assert after[name] == value, name
                else:
                    assert value.dtype == after[name].dtype, name
                    assert np.array_equal(after[name], value), name
        t.train(data)  # and the next run is the one it would have been
        runs.append({n: np.array(p.get_value()) for n, p in net.params.items()})
    for name in runs[0]:
        assert np.array_equal(runs[0][name], runs[1][name]), name


def test_the_networks_method_leaves_the_network_as_it_was():
    X, y, _ = problem()
    net = trainkit.Regressor([3, 1])
    before = {n: p.get_value().copy() for n, p in net.params.items()}
    found = net.find_learning_rate([X, y[:, None]], algo="sgd", num_updates=20, batch_size=32)
    assert len(found.rates) == 20 and found.rates[0] == 1e-8
    assert found.rates[-1] == pytest.approx(1e-8 * 1e8 ** (19 / 20))
    assert not hasattr(net, "trainer") or net.trainer is None
    for name, value in before.items():
        assert np.array_equal(net.params[name].get_value(), value), name


def test_suggest_needs_two_points_after_the_skipped_ones():
    assert suggest([1e-3] * 12, [1.0] * 12) is None
    assert suggest(np.logspace(-3, 0, 14), np.r_[np.ones(12), 0.5, 0.1]) is not None


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(min_lr=1.0, max_lr=0.1), r"max_lr: must be above min_lr=1.0, got 0.1"),
        (dict(min_lr=0), r"min_lr: must be a number in \(0, inf\), got 0"),
        (dict(num_updates=1), r"num_updates: must be an int >= 2, got 1"),
        (dict(beta=1.0), r"beta: must be a number in \(0, 1\), got 1.0"),
        (dict(early_stop_threshold=0.5), r"early_stop_threshold: must be a number in \(1, inf"),
    ],
)
def test_bad_settings_are_one_line_before_compiling(settings, message):
    X, y, _ = problem()
    with pytest.raises(ValueError, match=message):
        trainkit.Regressor([3, 1]).find_learning_rate([X, y[:, None]], **settings)


def test_the_command_prints_rates_and_a_suggestion_and_draws_the_plot(tmp_path):
    from PIL import Image
    from test_cli import CLASSIFIER, TAB_BLUE, invoke, one_line_error, write_data

    write_data(tmp_path)
    config = CLASSIFIER.replace("[training]\n", "[training]\nkeep_best = 2\nsave_every = 5\n")
    (tmp_path / "run.toml").write_text(config)
    png = tmp_path / "lr.png"
    args = ["lr-find", tmp_path / "run.toml", "--num-updates", 40, "-o", png]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert len(found["rates"]) == len(found["losses"]) <= 40
    assert found["suggestion"] in found["rates"]
    with Image.open(png) as image:  # the loss curve, and the suggestion as a red dot
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for colour in (TAB_BLUE, (214, 39, 40)):
        assert (pixels == colour).all(axis=1).sum() > 20, colour
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["learning_rate", "smoothed", "loss"]
    assert f"suggested learning_rate {found['suggestion']:.3g}" in result.stdout
    message = one_line_error(invoke(*args, "--max-lr", "0"))
    assert "--max-lr: must be a number in (0, inf), got 0.0" in message
