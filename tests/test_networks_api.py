"""What Keras users reach for: net.summary() and net.evaluate() (issue 9)."""

import numpy as np
import pytest

import trainkit


def test_summary_lists_layers_parameters_and_outputs():
    net = trainkit.Classifier([4, (6, "tanh"), 3])
    text = net.summary()
    sizes = {name: p.get_value().size for name, p in net.params.items()}
    assert text.startswith(
        f"Classifier: loss xent, dtype float32, {sum(sizes.values())} parameters"
    )
    for name, size in sizes.items():
        assert name in text and f"{size:,}" in text
    for output in net.outputs:
        assert output in text
    assert repr(text) == str(text)  # shows as a table at a prompt, not a quoted string


def test_evaluate_matches_numpy_for_a_regressor(rng):
    x = rng.normal(size=(20, 3)).astype("float32")
    y = rng.normal(size=(20, 2)).astype("float32")
    w = rng.uniform(0.5, 1.5, size=20).astype("float32")
    net = trainkit.Regressor([3, 2])
    error = (net.predict(x).astype(np.float64) - y) ** 2
    metrics = net.evaluate(x, y)
    assert metrics["mse"] == pytest.approx(error.mean(), rel=1e-6)
    assert metrics["loss"] == pytest.approx(error.mean(), rel=1e-6)
    weighted = net.evaluate(x, y, weights=w, batch_size=7)
    assert weighted["mse"] == pytest.approx((w * error.mean(axis=1)).sum() / w.sum(), rel=1e-6)


def test_evaluate_matches_score_for_a_classifier(rng):
    x = rng.normal(size=(30, 4)).astype("float32")
    labels = rng.integers(0, 3, size=30)
    net = trainkit.Classifier([4, 3])
    metrics = net.evaluate(x, labels)
    assert metrics["acc"] == pytest.approx(net.score(x, labels))
    p = net.predict_proba(x).astype(np.float64)
    assert metrics["loss"] == pytest.approx(-np.log(p[np.arange(30), labels]).mean(), rel=1e-5)


def test_predict_in_batches_equals_predict_at_once(rng):
    x = rng.normal(size=(23, 4, 3)).astype("float32")
    net = trainkit.Regressor([3, dict(size=5, form="gru"), 2])
    whole = net.predict(x)
    np.testing.assert_allclose(net.predict(x, batch_size=5), whole, rtol=1e-6, atol=1e-7)
    classifier = trainkit.Classifier([3, dict(size=5, form="rnn", return_sequences=False), 3])
    np.testing.assert_array_equal(classifier.predict(x, batch_size=4), classifier.predict(x))
    with pytest.raises(ValueError, match=r"batch_size: must be a positive int or None, got 0"):
        net.predict(x, batch_size=0)


def test_a_fused_recurrent_net_trains_on_jax_from_a_callable(rng):
    x = rng.normal(size=(8, 4, 3)).astype("float32")
    y = rng.normal(size=(8, 4, 2)).astype("float32")
    net = trainkit.Regressor([3, dict(size=5, form="lstm"), 2])
    net.train(
        lambda: [x, y],
        [x, y],
        algo="adam",
        epoch_size=2,
        max_updates=2,
        mode="JAX",
        progress=False,
        log=False,
    )
    assert net.trainer.step == 2
