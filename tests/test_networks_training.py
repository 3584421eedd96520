"""End-to-end: every model kind and layer form trains; every regularizer runs in a real
training run; save/load; bad data is refused before anything compiles."""

import numpy as np
import pytensor
import pytest

import regularizers
import trainkit

QUIET = dict(progress=False, log=False)
RNG = np.random.default_rng(11)


def first_and_last(pairs):
    pairs = list(pairs)
    return pairs[0], pairs[-1]


def test_xor_classifier_learns():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], "float32")
    y = np.array([0, 1, 1, 0])
    net = trainkit.Classifier([2, (8, "tanh"), 2], seed=1)
    net.train([x, y], algo="adam", learning_rate=0.05, batch_size=4, max_updates=300, **QUIET)
    np.testing.assert_array_equal(net.predict(x), y)
    assert net.score(x, y) == 1.0
    proba = net.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_regressor_fits_and_reports_r2():
    x = RNG.normal(size=(64, 3)).astype("float32")
    y = np.stack([x[:, 0] - 2 * x[:, 1], np.sin(x[:, 2])], 1).astype("float32")
    net = trainkit.Regressor([3, (16, "tanh"), 2])
    initial = np.mean((net.predict(x) - y) ** 2)
    _, last = net.train(
        [x, y],
        algo="adam",
        learning_rate=0.02,
        batch_size=16,
        max_updates=200,
        validate_every=40,
        **QUIET,
    )
    assert last["mse"] < 0.05 * initial
    pred = net.predict(x)
    r2 = np.mean(
        [
            1 - ((y[:, j] - pred[:, j]) ** 2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
            for j in range(2)
        ]
    )
    assert net.score(x, y) == pytest.approx(r2, rel=1e-6) and r2 > 0.9


def test_autoencoder_reconstructs():
    codes = RNG.normal(size=(64, 2))
    x = (codes @ RNG.normal(size=(2, 6))).astype("float32")
    net = trainkit.Autoencoder([6, (4, "linear"), 6])
    first, last = first_and_last(
        net.itertrain(
            [x],
            algo="adam",
            learning_rate=0.02,
            batch_size=16,
            max_updates=200,
            validate_every=50,
            **QUIET,
        )
    )
    assert last[1]["mse"] < 0.1 * first[1]["mse"]
    assert net.score(x) > 0.9


@pytest.mark.parametrize("form", ["rnn", "lstm", "gru"])
def test_recurrent_form_learns_to_remember(form):
    """Classify a sequence by the sign of its first element (needs memory)."""
    x = RNG.normal(size=(48, 4, 1)).astype("float32")
    y = (x[:, 0, 0] > 0).astype("int64")
    net = trainkit.Classifier([1, dict(size=6, form=form, return_sequences=False), 2], seed=2)
    first, last = first_and_last(
        net.itertrain(
            [x, y],
            algo="adam",
            learning_rate=0.05,
            batch_size=16,
            max_updates=60,
            validate_every=12,
            recurrent_norm=0.01,
            **QUIET,
        )
    )
    assert last[1]["xent"] < 0.6 * first[1]["xent"]
    assert last[1]["acc"] >= 0.85


def test_sequence_regressor_per_time_step_with_sample_weights():
    x = RNG.normal(size=(16, 3, 2)).astype("float32")
    y = np.cumsum(x, axis=1)[..., :1].astype("float32")
    w = np.ones((16, 3), "float32")
    w[:, 0] = 0  # the first step does not count
    net = trainkit.Regressor([2, dict(size=6, form="gru"), 1])
    (_, v0), (_, v1) = first_and_last(
        net.itertrain(
            [x, y, w],
            [x, y],
            algo="adam",
            learning_rate=0.05,
            batch_size=8,
            max_updates=40,
            validate_every=10,
            **QUIET,
        )
    )
    assert v1["mse"] < 0.5 * v0["mse"]
    # valid without weights got weights of ones: its mse is the plain mean
    err = (net.predict(x) - y) ** 2
    trainer, *_ = net._trainer([x, y, w], [x, y], "sgd", dict(max_updates=1, **QUIET))
    assert trainer.specs[-1].name == "weights"
    assert net.score(x, y) == pytest.approx(
        1 - err.sum() / ((y - y.reshape(-1, 1).mean()) ** 2).sum(), rel=1e-5
    )


KEYWORDS = {
    "weight_l2": 1e-2,
    "weight_decay": 1e-2,
    "weight_l1": 1e-2,
    "weight_sparsity": 1e-2,
    "hidden_l1": 1e-2,
    "hidden_sparsity": 1e-2,
    "hidden_l2": 1e-2,
    "recurrent_norm": 0.1,
    "recurrent_state": 0.1,
    "contractive": 0.1,
    "noise": {"hid1:out": 0.1},
    "input_noise": 0.1,
    "hidden_noise": 0.1,
    "output_noise": 0.01,
    "dropout": {"hid1:out": 0.2, "in:out": 0.1},
    "input_dropout": 0.1,
    "hidden_dropout": 0.2,
    "output_dropout": 0.1,
    "max_norm": 0.5,
    "max_gradient_norm": 0.1,
    "max_total_gradient_norm": 0.1,
    "max_gradient_elem": 0.01,
}


def test_every_registered_regularizer_has_a_training_run():
    assert set(KEYWORDS) == set(regularizers.names())


@pytest.mark.parametrize("keyword", sorted(KEYWORDS))
def test_regularizer_in_a_real_training_run(keyword):
    recurrent = keyword.startswith("recurrent")
    if recurrent:
        x = RNG.normal(size=(16, 3, 2)).astype("float32")
        y = x.sum(axis=1)[:, :1].astype("float32")
        layers = [2, dict(size=4, form="rnn", return_sequences=False), 1]
    else:
        x = RNG.normal(size=(32, 3)).astype("float32")
        y = (x @ np.array([[1.0], [-1.0], [0.5]])).astype("float32")
        layers = [3, (6, "tanh"), 1]
    net = trainkit.Regressor(layers, seed=4)
    before = {k: v.get_value() for k, v in net.params.items()}
    first, last = first_and_last(
        net.itertrain(
            [x, y],
            algo="adam",
            learning_rate=0.02,
            batch_size=16,
            max_updates=30,
            validate_every=10,
            **{keyword: KEYWORDS[keyword]},
            **QUIET,
        )
    )
    assert last[1]["mse"] < first[1]["mse"]
    name = regularizers.canonical(keyword)
    if name in (
        "weight_l2",
        "weight_l1",
        "hidden_l1",
        "hidden_l2",
        "recurrent_norm",
        "recurrent_state",
        "contractive",
    ):
        assert last[0][name] > 0
    if name == "max_norm":
        for key in ("hid1.w", "out.w"):
            norms = np.sqrt((net.params[key].get_value() ** 2).sum(axis=0))
            assert norms.max() <= 0.5 + 1e-5
    assert any(not np.array_equal(before[k], v.get_value()) for k, v in net.params.items())


def test_weight_decay_shrinks_weights():
    x = RNG.normal(size=(32, 3)).astype("float32")
    y = RNG.normal(size=(32, 1)).astype("float32")
    norms = []
    for decay in (0.0, 1.0):
        net = trainkit.Regressor([3, (6, "tanh"), 1], seed=4)
        net.train([x, y], algo="sgd", learning_rate=0.1, max_updates=50, weight_l2=decay, **QUIET)
        norms.append(
            np.sqrt(sum((net.params[k].get_value() ** 2).sum() for k in ("hid1.w", "out.w")))
        )
    assert norms[1] < 0.7 * norms[0]


def test_predict_with_dropout_varies_and_clean_predict_does_not():
    net = trainkit.Regressor([3, 32, 2])
    x = RNG.normal(size=(4, 3)).astype("float32")
    np.testing.assert_array_equal(net.predict(x), net.predict(x))
    a, b = net.predict(x, hidden_dropout=0.5), net.predict(x, hidden_dropout=0.5)
    assert not np.allclose(a, b)
    mapping = {"hid1:out": 0.5}  # an unhashable setting still reuses its function
    a, b = net.predict(x, dropout=mapping), net.predict(x, dropout=mapping)
    assert not np.allclose(a, b)
    with pytest.raises(
        TypeError, match="predict: 'weight_l2' is not a noise or dropout regularizer"
    ):
        net.predict(x, weight_l2=0.1)
    with pytest.raises(TypeError, match="predict: 'weight_l2' is not a noise or dropout"):
        net.predict(x, weight_l2=0)
    np.testing.assert_allclose(net.predict(x, batch_size=3), net.predict(x), rtol=1e-5)  # issue 9
    with pytest.raises(TypeError, match=r"predict: 'hiden_dropout' .*\(closest: hidden_dropout\)"):
        net.predict(x, hiden_dropout=0.5)


def test_save_and_load_restore_predictions_exactly(tmp_path):
    net = trainkit.Classifier([3, dict(size=4, form="lstm", name="enc"), 3], seed=3)
    x = RNG.normal(size=(2, 5, 3)).astype("float32")
    path = tmp_path / "model.npz"
    net.save(path)
    again = trainkit.load(path)
    assert type(again) is trainkit.Classifier and again.config() == net.config()
    np.testing.assert_array_equal(again.predict_proba(x), net.predict_proba(x))
    assert list(again.graph().outputs) == list(net.graph().outputs)


def test_a_crafted_model_file_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([Payload()], dtype=object))
    with pytest.raises(ValueError):
        trainkit.load(path)
    assert not marker.exists()


def test_model_file_checks(tmp_path):
    from trainkit import archive as checkpoints

    net = trainkit.Regressor([2, 3, 1])
    arrays = {k: v.get_value() for k, v in net.params.items()}
    meta = {"format": "trainkit.model", "version": 1, "class": "os.system", "config": net.config()}
    checkpoints.save(tmp_path / "a.npz", arrays, meta)
    with pytest.raises(ValueError, match=r"class: unknown model 'os.system'"):
        trainkit.load(tmp_path / "a.npz")
    meta["class"] = "Regressor"
    arrays["hid1.w"] = np.zeros((5, 5), "float32")
    checkpoints.save(tmp_path / "b.npz", arrays, meta)
    with pytest.raises(
        ValueError,
        match=r"implies parameter 'hid1.w' as float32\[2, 3\] but the file holds float32\[5, 5\]",
    ):
        trainkit.load(tmp_path / "b.npz")
    checkpoints.save(tmp_path / "c.npz", {}, {"format": "something else"})
    with pytest.raises(ValueError, match="not a trainkit model file"):
        trainkit.load(tmp_path / "c.npz")


@pytest.fixture
def no_compiling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compiled before checking the data")

    monkeypatch.setattr(pytensor, "function", refuse)


@pytest.mark.parametrize(
    "make_data, message",
    [
        (lambda x, y: [x[:, :, None], y], r"train: array 0 \('x'\) has 3 dimensions"),
        (
            lambda x, y: [x[:, :2], y],
            r"train: array 0 \('x'\) has 2 features; the model's input has 3",
        ),
        (
            lambda x, y: [np.where(np.arange(12)[:, None] == 7, np.nan, x), y],
            r"train: array 0 \('x'\) contains NaN or Inf \(first at row 7\)",
        ),
        (
            lambda x, y: [x, y + 1],
            r"train: array 1 \('labels'\) has labels out of range: found 2, allowed 0..1",
        ),
        (lambda x, y: [x, y[:-1]], r"train: arrays have different lengths"),
        (lambda x, y: [x, y + 0.5], r"train: array 1 \('labels'\) must hold integer class labels"),
    ],
)
def test_bad_data_is_refused_before_compiling(no_compiling, make_data, message):
    net = trainkit.Classifier([3, 4, 2])
    x = RNG.normal(size=(12, 3)).astype("float32")
    y = np.arange(12) % 2
    with pytest.raises(ValueError, match=message):
        net.train(make_data(x, y), max_updates=1, **QUIET)


def test_bad_keywords_are_refused_before_compiling(no_compiling):
    net = trainkit.Regressor([3, 4, 1])
    data = [np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32")]
    with pytest.raises(TypeError, match=r"weight_l22: unknown keyword.*closest: weight_l2"):
        net.train(data, weight_l22=0.1)
    with pytest.raises(ValueError, match=r"hidden_l1: pattern 'hid2:out' matches no output"):
        net.train(data, hidden_l1=dict(weight=0.1, pattern="hid2:out"))
    with pytest.raises(
        ValueError,
        match=r"recurrent_norm: the default selects nothing|no output is marked recurrent",
    ):
        net.train(data, recurrent_norm=0.1)
