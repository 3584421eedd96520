"""PyTensor's Numba backend (``mode="NUMBA"``) end to end, every recurrent form.

The suite runs on trainkit's default backend (JAX); these tests are about the
other compiled backend a user can choose, so they name ``mode="NUMBA"``. They
are marked ``numba``: a cold Numba cache costs minutes of compiling, so CI runs
them in a job of their own (docs/decisions.md, "The suite on the default
backend"). One network holds every form (a bidirectional LSTM, a GRU and an
RNN on padded sequences, fused kernels by default): its loss and gradients
are compared with the ``FAST_COMPILE`` scan reference, and training with
plain SGD with the same run on the reference. A last-step classifier (the
cross-entropy gather, dropout, validation) trains the same as on JAX.
"""

import numpy as np
import pytest
from test_backend_parity import (
    QUIET,
    assert_params_close,
    assert_same,
    data,
    layers,
    loss_and_gradients,
    sgd_run,
)

import trainkit

pytestmark = pytest.mark.numba


def test_numba_loss_and_gradients_of_every_form_match_the_reference():
    """The fused kernels (what a model runs by default); Numba's scan is the reference's
    graph and cost 12 minutes to compile cold on two busy cores, so it is left out."""
    x, y, lengths, weights = data()
    arrays = [x, y, lengths, weights]
    net = trainkit.Regressor(layers("all"), seed=1)
    got = loss_and_gradients(net, "NUMBA", arrays)
    expected = loss_and_gradients(net, "FAST_COMPILE", arrays, impl="scan")
    assert_same(got, expected, list(net.params))


def test_sgd_on_numba_matches_the_reference_with_lengths_and_weights():
    x, y, lengths, weights = data(3, n=12)

    def make():
        return trainkit.Regressor(layers("all"), seed=2)

    ref = sgd_run(make, [x, y, lengths, weights], "FAST_COMPILE", max_norm=1.0)
    numba = sgd_run(make, [x, y, lengths, weights], "NUMBA", max_norm=1.0)
    assert_params_close(numba, ref)
    np.testing.assert_allclose(
        numba.predict(x, lengths), ref.predict(x, lengths), rtol=1e-4, atol=1e-5
    )


def test_a_last_step_classifier_trains_the_same_on_numba_and_jax():
    """The cross-entropy gather and the last-step output, with SGD; then dropout (whose
    masks each backend draws its own way) trains on Numba and validates on the clean
    network, as ``evaluate`` computes it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 2)).astype("float32")
    labels = (x[:, 0, 0] > 0).astype("int64")
    settings = dict(
        algo="sgd",
        learning_rate=0.5,
        batch_size=8,
        max_updates=4,
        recurrent_norm=0.1,
        shuffle=False,
        seed=4,
        **QUIET,
    )

    def make():
        return trainkit.Classifier([2, dict(size=4, form="rnn", return_sequences=False), 2], seed=1)

    jax, numba = make(), make()
    jax.train([x, labels], mode="JAX", **settings)
    numba.train([x, labels], mode="NUMBA", **settings)
    assert_params_close(numba, jax)

    dropped = make()
    _, valid = dropped.train([x, labels], mode="NUMBA", hidden_dropout=0.2, **settings)
    assert np.isfinite(valid["xent"])
    assert valid["xent"] == pytest.approx(dropped.evaluate(x, labels)["loss"], rel=1e-4)
