"""The default backend (JAX) computes the same loss, gradients and SGD updates as the reference.

The reference is PyTensor's ``FAST_COMPILE`` mode (Python implementations of
every op, no compiler) on the ``impl='scan'`` graph: each recurrence written
with ``pytensor.scan``, so neither the fused kernels nor JAX are involved.
Comparisons are of the loss and the gradients themselves, and of parameters
after plain SGD (no Adam or RMSprop, whose scale invariance would hide a
gradient off by a constant factor, e.g. a mask or weight sum that counts
padded steps). Numba gets the same checks in ``test_numba_backend.py``.

Shared by the Numba tests: :func:`loss_and_gradients` and the networks here.
"""

import numpy as np
import pytensor
import pytest

import trainkit
from trainkit.backend import prepare, quiet

QUIET = dict(progress=False, log=False)
B, T = 10, 5

#: float32 agreement of two backends on a loss or gradient (the same float32 math in
#: another order; observed about 1e-6)
RTOL, ATOL = 2e-4, 2e-6


def layers(form):
    """Every recurrent form, in networks small enough to compile fast.

    ``"all"`` stacks a bidirectional LSTM, a GRU and an RNN on padded sequences
    (lengths) with a sequence output; the others are one layer of that form.
    """
    if form == "all":
        return [
            dict(size=2, lengths=True),
            dict(size=3, form="lstm", bidirectional=True),
            dict(size=3, form="gru"),
            dict(size=3, form="rnn"),
            1,
        ]
    return [dict(size=2, lengths=True), dict(size=3, form=form), 1]


def data(seed=0, n=B):
    """Padded sequences (loud padding), targets, lengths and per-step weights."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=n).astype("int32")
    lengths[0] = T
    x = rng.normal(size=(n, T, 2)).astype("float32")
    y = np.cumsum(x[..., :1], axis=1).astype("float32")
    pad = np.arange(T)[None, :] >= lengths[:, None]
    x[pad] = 3.0
    y[pad] = -5.0
    weights = rng.uniform(0.5, 2.0, size=(n, T)).astype("float32")
    return x, y, lengths, weights


def loss_and_gradients(net, mode, arrays, impl=None):
    """``[loss, d loss / d p for each parameter]`` of ``net``'s training loss under ``mode``."""
    task = net.task(weighted=len(arrays) == len(net.task().specs) + 1, impl=impl)
    params = list(net.params.values())
    prepare(mode, net.dtype)
    with quiet():
        function = pytensor.function(
            task.inputs,
            [task.loss, *pytensor.grad(task.loss, params)],
            givens=task.givens,
            mode=mode,
        )
        return [np.asarray(v, np.float64) for v in function(*arrays)]


def assert_same(got, expected, names, rtol=RTOL, atol=ATOL):
    for name, a, b in zip(["loss", *names], got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def references():
    """The scan reference's loss and gradients, per form (shared across tests)."""
    return {}


def reference(references, form, arrays):
    key = (form, len(arrays))
    if key not in references:
        net = trainkit.Regressor(layers(form), seed=1)
        references[key] = loss_and_gradients(net, "FAST_COMPILE", arrays, impl="scan")
    return references[key]


@pytest.mark.parametrize("form", ["rnn", "lstm", "gru", "all"])
def test_jax_loss_and_gradients_match_the_scan_reference(references, form):
    x, y, lengths, weights = data()
    arrays = [x, y, lengths, weights]
    net = trainkit.Regressor(layers(form), seed=1)
    got = loss_and_gradients(net, "JAX", arrays)
    assert_same(got, reference(references, form, arrays), list(net.params))


def test_the_loss_counts_real_steps_only_and_weights_them():
    """The reference itself against numpy: the weighted mean over real steps of a
    network whose output is checked step by step (no backend trusted)."""
    x, y, lengths, weights = data()
    net = trainkit.Regressor(layers("rnn"), seed=1)
    loss = loss_and_gradients(net, "JAX", [x, y, lengths, weights])[0]
    out = net.predict(x, lengths).astype(np.float64)
    p = {k: np.asarray(v.get_value(), np.float64) for k, v in net.params.items()}
    for b, length in enumerate(lengths):  # the output over real steps, in numpy
        h = np.zeros(3)
        for t in range(length):
            h = np.tanh(x[b, t] @ p["hid1.xh"] + h @ p["hid1.hh"] + p["hid1.b"])
            np.testing.assert_allclose(out[b, t], h @ p["out.w"] + p["out.b"], rtol=1e-5)
    real = np.arange(T)[None, :] < lengths[:, None]
    w = real * weights
    expected = (w * ((out - y) ** 2)[..., 0]).sum() / w.sum()
    assert loss == pytest.approx(expected, rel=1e-5)


def sgd_run(make, arrays, mode, **options):
    net = make()
    settings = dict(algo="sgd", learning_rate=0.05, batch_size=4, max_updates=5, shuffle=False)
    net.train(arrays, mode=mode, **{**settings, **options}, **QUIET)
    return net


def assert_params_close(net, ref, rtol=1e-4, atol=1e-6):
    moved = 0.0
    for name, param in ref.params.items():
        np.testing.assert_allclose(
            net.params[name].get_value(), param.get_value(), rtol=rtol, atol=atol, err_msg=name
        )
        moved = max(moved, float(np.abs(param.get_value() - make_initial(ref)[name]).max()))
    assert moved > 1e-3  # the updates did something


def make_initial(net):
    fresh = type(net)(net.config()["layers"], seed=net.seed, loss=net.loss_name)
    return {name: p.get_value() for name, p in fresh.params.items()}


@pytest.mark.parametrize(
    "form,weighted",
    [("lstm", False), ("all", True)],
    ids=["lstm", "bilstm-gru-rnn-weighted"],
)
def test_sgd_on_jax_matches_the_reference(form, weighted):
    x, y, lengths, weights = data(3, n=12)
    arrays = [x, y, lengths] + ([weights] if weighted else [])

    def make():
        return trainkit.Regressor(layers(form), seed=2)

    ref = sgd_run(make, arrays, "FAST_COMPILE", max_norm=1.0)
    jax = sgd_run(make, arrays, "JAX", max_norm=1.0)
    assert_params_close(jax, ref)


@pytest.mark.parametrize("shape", ["flat", "per-step"])
def test_a_classifier_with_a_batch_of_at_least_128_trains_the_same_on_jax(shape):
    """JAX's ``arange`` overflows at 128 (PyTensor 3.0.7): the cross-entropy gather must
    not use it. 150 examples, or 32 sequences × 5 steps = 160 labels, in one batch."""
    rng = np.random.default_rng(4)
    if shape == "flat":
        x = rng.normal(size=(150, 4)).astype("float32")
        labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)
        spec = [4, (6, "tanh"), 3]
    else:
        x = rng.normal(size=(32, T, 2)).astype("float32")
        labels = (np.cumsum(x[..., 0], axis=1) > 0).astype("int64")
        spec = [2, dict(size=4, form="gru"), 2]

    def make():
        return trainkit.Classifier(spec, seed=3)

    net = make()
    got = loss_and_gradients(net, "JAX", [x, labels])
    expected = loss_and_gradients(net, "FAST_COMPILE", [x, labels], impl="scan")
    assert_same(got, expected, list(net.params))
    proba = net.predict_proba(x).reshape(-1, spec[-1]).astype(np.float64)
    xent = -np.log(proba[np.arange(proba.shape[0]), labels.reshape(-1)]).mean()
    assert got[0] == pytest.approx(xent, rel=1e-5)
    options = dict(batch_size=len(x), max_updates=3)
    ref = sgd_run(make, [x, labels], "FAST_COMPILE", **options)
    jax = sgd_run(make, [x, labels], "JAX", **options)
    assert_params_close(jax, ref)


def test_the_weighted_split_step_equals_the_one_function_step_on_padded_sequences():
    """The data-parallel step's maths on one process: two half batches accumulated, each
    weighted by its sum of real-step weights, make the update of the whole batch."""
    x, y, lengths, weights = data(5, n=16)

    def make():
        return trainkit.Regressor(layers("gru"), seed=2)

    one = sgd_run(make, [x, y, lengths, weights], None, batch_size=8, max_updates=2)
    split = sgd_run(make, [x, y, lengths, weights], None, batch_size=4, accumulate=2, max_updates=2)
    assert_params_close(split, one, rtol=1e-5)
