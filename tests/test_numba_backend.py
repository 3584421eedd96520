"""The default backend (Numba) trains a recurrent classifier the same as the test mode.

One end-to-end run through ``net.train`` with ``mode="NUMBA"``: scan, the
cross-entropy one-hot gather, the finiteness guard on every update, dropout
and the validation function, compared with the same run in the suite's
FAST_COMPILE mode. About 80 s on a cold cache (compiling), a few seconds warm.
"""

import numpy as np
import pytest

import trainkit


@pytest.mark.numba
def test_recurrent_classifier_trains_the_same_on_numba():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 2)).astype("float32")
    labels = (x[:, 0, 0] > 0).astype("int64")
    settings = dict(
        algo="adam",
        learning_rate=0.05,
        batch_size=8,
        max_updates=4,
        recurrent_norm=0.1,
        hidden_dropout=0.2,
        shuffle=False,
        progress=False,
        log=False,
    )
    nets = []
    for mode in (None, "NUMBA"):
        net = trainkit.Classifier([2, dict(size=4, form="rnn", return_sequences=False), 2], seed=1)
        _, valid = net.train([x, labels], mode=mode, **settings)
        nets.append((net, valid))
    (ref, ref_valid), (numba, numba_valid) = nets
    for name, param in ref.params.items():
        np.testing.assert_allclose(
            numba.params[name].get_value(), param.get_value(), rtol=1e-4, atol=1e-6
        )
    assert numba_valid["xent"] == pytest.approx(ref_valid["xent"], rel=1e-4)
