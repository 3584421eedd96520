"""mode='JAX' (the GPU path) trains the same models as the default backend, on CPU here.

The reference run names ``mode="FAST_COMPILE"`` (Python implementations; the
suite's default is JAX itself): the same updates from the same start must
give the same parameters up to float32 rounding.
"""

import numpy as np
import pytest

import trainkit

pytestmark = [
    pytest.mark.filterwarnings("ignore:The RandomType SharedVariables:UserWarning"),
    pytest.mark.filterwarnings("ignore:Skipping Assert:UserWarning"),
    pytest.mark.filterwarnings("ignore:Explicitly requested dtype:UserWarning"),
]

QUIET = dict(progress=False, log=False)
RNG = np.random.default_rng(5)


def train_both(make, data, **kwargs):
    nets = []
    for mode in ("FAST_COMPILE", "JAX"):
        net = make()
        net.train(data, mode=mode, **kwargs, **QUIET)
        nets.append(net)
    return nets


def test_feedforward_regressor_trains_the_same_on_jax():
    x = RNG.normal(size=(40, 3)).astype("float32")
    y = (x @ RNG.normal(size=(3, 2))).astype("float32")
    ref, jax = train_both(
        lambda: trainkit.Regressor([3, (8, "tanh"), 2], seed=1),
        [x, y],
        algo="adam",
        learning_rate=0.01,
        batch_size=16,
        max_updates=12,
        weight_l2=1e-3,
        max_norm=2.0,
        shuffle=False,
    )
    for name, param in ref.params.items():
        np.testing.assert_allclose(
            jax.params[name].get_value(), param.get_value(), rtol=2e-3, atol=2e-5
        )
    np.testing.assert_allclose(jax.predict(x), ref.predict(x), rtol=2e-3, atol=2e-4)


def test_lstm_classifier_trains_the_same_on_jax():
    x = RNG.normal(size=(24, 4, 2)).astype("float32")
    labels = (x[:, 0, 0] > 0).astype("int64")
    ref, jax = train_both(
        lambda: trainkit.Classifier(
            [2, dict(size=5, form="lstm", return_sequences=False), 2], seed=2
        ),
        [x, labels],
        algo="rmsprop",
        learning_rate=0.01,
        batch_size=8,
        max_updates=6,
        recurrent_norm=0.1,
        shuffle=False,
    )
    for name, param in ref.params.items():
        np.testing.assert_allclose(
            jax.params[name].get_value(), param.get_value(), rtol=2e-3, atol=2e-5
        )
    np.testing.assert_allclose(jax.predict_proba(x), ref.predict_proba(x), rtol=2e-3, atol=2e-4)


def test_jax_scan_layers_need_one_sequence_length():
    """Fused layers read the length from the data; a scan layer needs one static length."""
    x = RNG.normal(size=(8, 4, 2)).astype("float32")
    y = RNG.normal(size=(8, 4, 1)).astype("float32")
    valid = [np.zeros((2, 5, 2), "float32"), np.zeros((2, 5, 1), "float32")]
    fused = trainkit.Regressor([2, dict(size=3, form="gru"), 1], mode="JAX")
    fused.train([x, y], valid, max_updates=1, **QUIET)
    assert fused.predict(valid[0]).shape == (2, 5, 1)
    net = trainkit.Regressor([2, dict(size=3, form="gru", impl="scan"), 1], mode="JAX")
    with pytest.raises(ValueError, match=r"valid: array 0 \('x'\) has 5 time steps"):
        net.train([x, y], valid, max_updates=1, **QUIET)
    with pytest.raises(ValueError, match="mode='JAX' with recurrent layers needs array data"):
        net.train(lambda: [x, y], [x, y], epoch_size=2, max_updates=1, **QUIET)


def _params_close(a, b, rtol=2e-3, atol=2e-5):
    for name, param in a.params.items():
        np.testing.assert_allclose(
            b.params[name].get_value(), param.get_value(), rtol=rtol, atol=atol, err_msg=name
        )


@pytest.mark.parametrize(
    "layer",
    [
        dict(size=4, form="lstm"),
        dict(size=3, form="gru", bidirectional=True),
        dict(size=3, form="rnn", impl="scan"),
    ],
    ids=["lstm", "bigru", "rnn-scan"],
)
def test_sequence_to_sequence_trains_the_same_on_jax(layer):
    """A sequence-returning layer followed by another layer (failed at the first update)."""
    x = RNG.normal(size=(12, 5, 2)).astype("float32")
    y = np.cumsum(x[..., :1], axis=1).astype("float32")
    ref, jax = train_both(
        lambda: trainkit.Regressor([2, layer, (3, "tanh"), 1], seed=3),
        [x, y],
        algo="adam",
        learning_rate=0.01,
        batch_size=6,
        max_updates=4,
        recurrent_norm=0.1,
        shuffle=False,
    )
    _params_close(ref, jax)
    np.testing.assert_allclose(jax.predict(x), ref.predict(x), rtol=2e-3, atol=2e-4)


def test_variable_lengths_train_the_same_on_jax():
    x = RNG.normal(size=(12, 5, 2)).astype("float32")
    y = np.cumsum(x[..., :1], axis=1).astype("float32")
    lengths = RNG.integers(1, 6, size=12).astype("int32")
    ref, jax = train_both(
        lambda: trainkit.Regressor(
            [dict(size=2, lengths=True), dict(size=3, form="lstm", bidirectional=True), 1], seed=4
        ),
        [x, y, lengths],
        algo="adam",
        learning_rate=0.01,
        batch_size=6,
        max_updates=4,
        recurrent_norm=0.1,
        hidden_l2=0.01,
        shuffle=False,
    )
    _params_close(ref, jax)
    np.testing.assert_allclose(
        jax.predict(x, lengths), ref.predict(x, lengths), rtol=2e-3, atol=2e-4
    )


def test_float32_recurrent_net_trains_on_jax_under_floatx_float64():
    """PyTensor's default floatX is float64; a float32 model must still compile on JAX
    (float64 constants from the gradient would break the scan's carry types)."""
    import pytensor

    x = RNG.normal(size=(8, 3, 2)).astype("float32")
    y = RNG.normal(size=(8, 1)).astype("float32")
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        net = trainkit.Regressor([2, dict(size=3, form="gru", return_sequences=False), 1])
        _, valid = net.train([x, y], mode="JAX", max_updates=2, **QUIET)
    assert np.isfinite(valid["loss"])
    assert {p.dtype for p in net.params.values()} == {"float32"}


@pytest.mark.parametrize("accumulate", [1, 2], ids=["one-function", "split"])
def test_a_jax_run_with_dropout_and_noise_resumes_bitwise(tmp_path, accumulate):
    """JAX draws from a private copy of each generator; checkpoints must hold the copy's
    state, or a resumed run replays the first masks (it did before)."""
    x = RNG.normal(size=(24, 3)).astype("float32")
    y = np.tanh(x[:, :2]).astype("float32")
    options = dict(
        algo="adam",
        learning_rate=0.02,
        batch_size=8,
        shuffle=True,
        seed=3,
        hidden_dropout=0.3,
        input_noise=0.1,
        accumulate=accumulate,
        mode="JAX",
        **QUIET,
    )

    def run(**kwargs):
        net = trainkit.Regressor([3, (5, "tanh"), 2], seed=1)
        net.train([x, y], **options, **kwargs)
        return net

    whole = run(max_updates=8)
    path = tmp_path / "run.ckpt"
    run(max_updates=3, save_progress=path)
    resumed = run(max_updates=8, resume=path)
    for name, param in whole.params.items():
        assert np.array_equal(resumed.params[name].get_value(), param.get_value()), name


def test_contractive_through_recurrent_layers_names_the_mode_under_jax():
    """JAX cannot differentiate a recurrence twice: one line before compiling (the default
    mode compiles such a run with Numba instead)."""
    from regularizers.errors import InvalidArgument

    x = RNG.normal(size=(6, 3, 2)).astype("float32")
    y = RNG.normal(size=(6, 3, 1)).astype("float32")
    net = trainkit.Regressor([2, dict(size=2, form="rnn"), 1])
    with pytest.raises(InvalidArgument, match=r"^mode: contractive through recurrent .*'NUMBA'"):
        net.train([x, y], contractive=0.1, max_updates=1, mode="JAX", **QUIET)
