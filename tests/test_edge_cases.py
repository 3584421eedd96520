"""Edge cases a review found: each was a silent wrong answer or a late crash."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import regularizers
import trainkit
from trainkit.training import schedules

QUIET = dict(progress=False, log=False)


def test_float64_and_int_data_without_validation_set_are_cast(rng):
    x = rng.normal(size=(16, 3))  # float64, numpy's default
    y = rng.normal(size=(16, 1))
    _, valid = trainkit.Regressor([3, 1]).train([x, y], max_updates=3, **QUIET)
    assert np.isfinite(valid["mse"])
    labels = np.arange(16) % 2  # int64
    _, valid = trainkit.Classifier([3, 2]).train([x.astype(int), labels], max_updates=3, **QUIET)
    assert 0 <= valid["acc"] <= 1


def test_denoising_autoencoder_reconstructs_the_clean_input(rng):
    """input_noise corrupts what the network reads, not the target it must reproduce."""
    x = rng.normal(size=(256, 4)).astype("float32")
    net = trainkit.Autoencoder([4, (4, "linear")])
    net.params["out.w"].set_value(np.eye(4, dtype="float32"))
    net.params["out.b"].set_value(np.zeros(4, "float32"))
    train, valid = net.train(
        [x], algo="sgd", learning_rate=0.0, input_noise=1.0, batch_size=256, max_updates=1, **QUIET
    )
    # an identity network on noisy input is off by the noise: mse ~ sigma^2 = 1
    assert 0.8 < train["mse"] < 1.2
    assert valid["mse"] == pytest.approx(0.0, abs=1e-10)
    _, valid = net.train(
        [x],
        algo="sgd",
        learning_rate=0.0,
        input_dropout=0.5,
        batch_size=256,
        max_updates=1,
        **QUIET,
    )
    assert valid["mse"] == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("keyword", ["output_dropout", "output_noise"])
def test_noise_that_cannot_reach_the_loss_is_an_error(rng, keyword):
    x = rng.normal(size=(8, 3)).astype("float32")
    with pytest.raises(
        ValueError, match=rf"{keyword}: its noise on out:out does not reach the loss"
    ):
        trainkit.Classifier([3, 4, 2]).train(
            [x, np.arange(8) % 2], max_updates=1, **{keyword: 0.5}, **QUIET
        )


def test_one_seed_reproduces_an_esgd_run_with_dropout(rng):
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x[:, :1] * 2

    def run(**seed):
        net = trainkit.Regressor([3, 8, 1], seed=1)
        net.train(
            [x, y],
            algo="esgd",
            learning_rate=0.05,
            hidden_dropout=0.2,
            max_updates=5,
            **seed,
            **QUIET,
        )
        assert net.trainer.options.seed == seed.get("seed", 0)  # the trainer's, not esgd's
        return net.params["hid1.w"].get_value()

    np.testing.assert_array_equal(run(), run())
    np.testing.assert_array_equal(run(seed=3), run(seed=3))
    assert not np.array_equal(run(seed=3), run(seed=4))


def test_a_schedule_on_rprop_is_an_error():
    net = trainkit.Regressor([3, 1])
    data = [np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32")]
    with pytest.raises(TypeError, match=r"lr_schedule: rprop reads learning_rate once"):
        net.train(data, algo="rprop", lr_schedule=dict(name="step", step_size=1), **QUIET)
    with pytest.raises(TypeError, match=r"lr_warmup: rprop reads learning_rate once"):
        net.train(data, algo="rprop", lr_warmup=5, **QUIET)


def test_a_schedule_object_takes_its_own_warmup_and_rate():
    net = trainkit.Regressor([3, 1])
    data = [np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32")]
    step = schedules.Step(0.1, step_size=2)
    with pytest.raises(TypeError, match=r"lr_warmup: give the warmup to the Schedule object"):
        net.train(data, lr_schedule=step, lr_warmup=3, **QUIET)
    with pytest.raises(TypeError, match=r"learning_rate: 0.01 disagrees with the Schedule"):
        net.train(data, lr_schedule=step, learning_rate=0.01, **QUIET)


def test_cosine_schedule_takes_its_length_from_max_epochs(rng):
    x = rng.normal(size=(20, 3)).astype("float32")
    y = rng.normal(size=(20, 1)).astype("float32")
    pairs = list(
        trainkit.Regressor([3, 1]).itertrain(
            [x, y], learning_rate=0.1, lr_schedule="cosine", batch_size=5, max_epochs=2, **QUIET
        )
    )
    # 8 updates in all; after update 8 the cosine is at its minimum, 0
    assert [tm["step"] for tm, _ in pairs] == [4, 8]
    assert pairs[0][0]["lr"] == pytest.approx(0.1 * (1 + np.cos(np.pi * 3 / 8)) / 2, rel=1e-6)


def test_weighted_validation_does_not_depend_on_batch_size(rng):
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    w = np.array([10] * 4 + [0.1] * 4, "float32")
    reported = []
    for batch_size in (3, 4, 8):
        net = trainkit.Regressor([3, 1], seed=0)
        _, valid = net.train(
            [x, y, w], algo="sgd", learning_rate=0.0, batch_size=batch_size, max_updates=1, **QUIET
        )
        reported.append(valid["mse"])
    err = (net.predict(x) - y)[:, 0].astype(np.float64) ** 2
    np.testing.assert_allclose(reported, (w * err).sum() / w.sum(), rtol=1e-6)


def test_a_batch_whose_weights_are_all_zero_counts_for_nothing(rng):
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    w = np.array([0] * 4 + [1] * 4, "float32")
    net = trainkit.Regressor([3, 1])
    train, valid = net.train([x, y, w], batch_size=4, shuffle=False, max_updates=2, **QUIET)
    assert np.isfinite(train["loss"]) and train["skipped"] == 0 and np.isfinite(valid["loss"])


def test_recurrent_penalties_on_one_step_sequences():
    z = pt.tensor3("z")
    graph = regularizers.Graph({"rnn:out": z}, {}, recurrent=["rnn:out"])
    for name in ("recurrent_norm", "recurrent_state"):
        penalty = regularizers.build(name, weight=1.0).loss(graph)
        assert float(penalty.eval({z: np.ones((2, 1, 3), "float32")})) == 0.0
    pinned = pt.specify_shape(z, (None, 1, 3))
    graph = regularizers.Graph({"rnn:out": pinned}, {}, recurrent=["rnn:out"])
    with pytest.raises(ValueError, match=r"recurrent_norm: output 'rnn:out' has 1 time step"):
        regularizers.build("recurrent_norm", weight=1.0).loss(graph)


def test_noise_and_dropout_draw_in_the_output_dtype():
    """Used on a hand-written graph (no assemble), a float32 graph stays float32."""
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        x = pt.matrix("x", dtype="float32")
        graph = regularizers.Graph(
            {"in:out": x, "hid1:out": pt.tanh(x)}, {}, inputs={"x": x}, hidden=["hid1:out"]
        )
        for name in ("hidden_noise", "hidden_dropout"):
            noisy = regularizers.build(name, weight=0.5).modify_graph(graph)
            draws = [
                v
                for v in pytensor.graph.traversal.ancestors([noisy.outputs["hid1:out"]])
                if v.owner is not None and "rv" in type(v.owner.op).__name__.lower()
            ]
            assert draws and all(
                v.dtype in ("float32", "bool") for v in draws if hasattr(v, "dtype") and v.ndim > 0
            )
            assert noisy.outputs["hid1:out"].dtype == "float32"


def test_unknown_mode_names_the_closest():
    data = [np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32")]
    with pytest.raises(ValueError, match=r"mode: unknown PyTensor mode 'JAXX'.*\(closest: JAX\)"):
        trainkit.Regressor([3, 1]).train(data, mode="JAXX", **QUIET)
