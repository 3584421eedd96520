"""huber, mae, mse, gll, hinge and class-weighted xent against numpy and torch, float64,
values and gradients; the class_weight option from net.train and the config file."""

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import QUIET

import trainkit
from regularizers.errors import InvalidArgument
from trainkit.cli.config import ConfigError, load_text
from trainkit.models import losses
from trainkit.training import spec

N, K = 7, 3
RNG = np.random.default_rng(5)
PRE = RNG.normal(scale=2.0, size=(N, K))  # |d| on both sides of huber's delta
TARGET = RNG.normal(size=(N, K))
LABELS = np.array([0, 2, 1, 2, 2, 0, 1])
SAMPLE = RNG.uniform(0.2, 2.0, size=N)
CLASS = np.array([1.0, 3.0, 0.5])
GLL_OUT = RNG.normal(size=(N, 2 * K))


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- numpy: per-example errors, and the weighted mean -----------------------------------


def np_huber(d):
    d = np.abs(d)
    return np.where(d <= 1, 0.5 * d**2, d - 0.5).mean(axis=-1)


def np_xent(pre, labels):
    return -np.log(_softmax(pre)[np.arange(len(labels)), labels])


def np_hinge(scores, labels):
    out = np.zeros(len(labels))
    for b, y in enumerate(labels):
        wrong = max(scores[b, j] for j in range(scores.shape[1]) if j != y)
        out[b] = max(0.0, 1.0 + wrong - scores[b, y])
    return out


def np_gll(out, target):
    mean, logvar = out[:, :K], out[:, K:]
    return (0.5 * (logvar + (target - mean) ** 2 / np.exp(logvar))).mean(axis=-1)


def wmean(e, w):
    return e.mean() if w is None else (w * e).sum() / w.sum()


NUMPY = {
    "mse": lambda w: wmean(((PRE - TARGET) ** 2).mean(axis=-1), w),
    "mae": lambda w: wmean(np.abs(PRE - TARGET).mean(axis=-1), w),
    "huber": lambda w: wmean(np_huber(PRE - TARGET), w),
    "gll": lambda w: wmean(np_gll(GLL_OUT, TARGET), w),
    "hinge": lambda w: wmean(np_hinge(PRE, LABELS), w),
    "xent": lambda w: wmean(np_xent(PRE, LABELS), w),
    "xent_class": lambda w: wmean(np_xent(PRE, LABELS), CLASS[LABELS] * (1 if w is None else w)),
}


# -- one compiled function per mode: every loss, unweighted and weighted, and d/d(pre) ----


@functools.cache
def compiled(mode):
    """{name: (value, weighted value, gradient w.r.t. the output's pre-activation)}."""
    with pytensor.config.change_flags(warn_float64="ignore"):
        import jax  # softmax compiles with config.mode (JAX under the default flags) too

        stack = jax.enable_x64(True)
        with stack:
            pre = pt.tensor("pre", dtype="float64", shape=(N, K))  # static: no JAX asserts
            gll_out = pt.tensor("gll_out", dtype="float64", shape=(N, 2 * K))
            target = pt.tensor("target", dtype="float64", shape=(N, K))
            labels = pt.tensor("labels", dtype="int64", shape=(N,))
            w = pt.tensor("w", dtype="float64", shape=(N,))
            outs, names = [], []
            for name in NUMPY:
                loss = losses.get(name.split("_")[0])
                for weights in (None, w):
                    if name == "gll":
                        value = loss(gll_out, gll_out, target, weights)
                        wrt = gll_out
                    elif name in ("mse", "mae", "huber"):
                        value, wrt = loss(pre, pre, target, weights), pre
                    else:
                        if name == "xent_class":
                            weights = losses.class_weighted(weights, labels, CLASS, "float64")
                        value, wrt = (
                            loss(pre, pt.special.softmax(pre, axis=-1), labels, weights),
                            pre,
                        )
                    outs += [value, pytensor.grad(value, wrt)]
                names.append(name)
            f = pytensor.function(
                [pre, gll_out, target, labels, w], outs, mode=mode, on_unused_input="ignore"
            )
            values = [np.asarray(v) for v in f(PRE, GLL_OUT, TARGET, LABELS, SAMPLE)]
    return {n: values[4 * i : 4 * i + 4] for i, n in enumerate(names)}


MODES = ["FAST_COMPILE", "JAX"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(NUMPY))
def test_values_match_numpy(mode, name):
    value, grad, weighted, _ = compiled(mode)[name]
    assert float(value) == pytest.approx(NUMPY[name](None), rel=1e-12, abs=1e-14)
    assert float(weighted) == pytest.approx(NUMPY[name](SAMPLE), rel=1e-12, abs=1e-14)
    assert grad.shape == (GLL_OUT if name == "gll" else PRE).shape


def _torch_losses(torch):
    """name -> (torch value, unweighted gradient w.r.t. the pre-activation), float64."""
    nn = torch.nn
    out = {}
    for name in NUMPY:
        a = torch.tensor(GLL_OUT if name == "gll" else PRE, requires_grad=True)
        t, y = torch.tensor(TARGET), torch.tensor(LABELS)
        if name == "mse":
            value = nn.MSELoss()(a, t)
        elif name == "mae":
            value = nn.L1Loss()(a, t)
        elif name == "huber":
            value = nn.HuberLoss(delta=1.0)(a, t)
        elif name == "gll":  # full=False: no 0.5 log(2 pi) per target
            value = nn.GaussianNLLLoss(full=False, eps=1e-12)(a[:, :K], t, torch.exp(a[:, K:]))
        elif name == "xent":
            value = nn.CrossEntropyLoss()(a, y)
        elif name == "xent_class":
            value = nn.CrossEntropyLoss(weight=torch.tensor(CLASS))(a, y)
        else:
            continue  # MultiMarginLoss is Weston-Watkins, not Crammer-Singer: numpy only
        value.backward()
        out[name] = (value.item(), a.grad.numpy())
    return out


@pytest.mark.parametrize("mode", MODES)
def test_values_and_gradients_match_torch(mode):
    torch = pytest.importorskip("torch")
    got = compiled(mode)
    for name, (value, grad) in _torch_losses(torch).items():
        assert float(got[name][0]) == pytest.approx(value, rel=1e-12), name
        np.testing.assert_allclose(got[name][1], grad, rtol=1e-10, atol=1e-14, err_msg=name)


def test_hinge_gradient_is_minus_one_plus_one_on_active_margins():
    """Crammer-Singer's subgradient, written out: -1 on the label, +1 on the top wrong class."""
    got = compiled("FAST_COMPILE")["hinge"][1]
    expected = np.zeros_like(PRE)
    for b, y in enumerate(LABELS):
        wrong = [j for j in range(K) if j != y]
        j = max(wrong, key=lambda j: PRE[b, j])
        if 1 + PRE[b, j] - PRE[b, y] > 0:
            expected[b, y], expected[b, j] = -1 / N, 1 / N
    np.testing.assert_allclose(got, expected, atol=1e-15)


# -- through the network: class_weight, sample weights and padded steps -----------------


def test_class_weight_multiplies_sample_weights_and_padded_steps_weigh_nothing(rng):
    """A per-step classifier on padded sequences: the training loss is sum(s c l)/sum(s c) over real steps."""
    net = trainkit.Classifier([dict(size=2, lengths=True), dict(size=3, form="rnn"), 3])
    x = rng.normal(size=(4, 5, 2)).astype("float32")
    lengths = np.array([5, 2, 3, 1], "int32")
    labels = rng.integers(0, 3, size=(4, 5))
    sample = rng.uniform(0.5, 2.0, size=(4, 5)).astype("float32")
    task = net.task(weighted=True, time_steps=5, class_weight=CLASS)  # static T for JAX
    import jax  # the recurrent layer's scan compiles with the network's mode (JAX by default)

    with pytensor.config.change_flags(mode="FAST_COMPILE"), jax.enable_x64(True):
        loss = pytensor.function(task.inputs, task.loss, givens=task.givens)
        loss = loss(x, labels, lengths, sample)
    p = net.predict_proba(x, lengths).astype(np.float64)
    real = np.arange(5)[None, :] < lengths[:, None]
    nll = -np.log(np.take_along_axis(p, labels[..., None], axis=-1)[..., 0])
    weight = sample * CLASS[labels] * real
    assert float(loss) == pytest.approx((weight * nll).sum() / weight.sum(), rel=1e-5)


def test_class_weight_trains_from_net_train_and_evaluate_reports_each_loss(rng):
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    for loss in ("xent", "hinge"):
        net = trainkit.Classifier([3, 4, 2], loss=loss)
        train, _ = net.train([x, y], algo="sgd", max_updates=2, class_weight={1: 2.0}, **QUIET)
        assert np.isfinite(train[loss])
        scores = net.predict_proba(x).astype(np.float64)
        expected = (
            np_hinge(scores, y).mean() if loss == "hinge" else np_xent(np.log(scores), y).mean()
        )
        assert net.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-5)
    for loss in ("huber", "gll"):
        net = trainkit.Regressor([3, 4 if loss == "gll" else 2], loss=loss)
        net.train([x, x[:, :2]], algo="sgd", max_updates=2, **QUIET)
        out = net.predict(x).astype(np.float64)
        ref = np_huber(out - x[:, :2]) if loss == "huber" else None
        if loss == "gll":
            mean, logvar = out[:, :2], out[:, 2:]
            ref = (0.5 * (logvar + (x[:, :2] - mean) ** 2 / np.exp(logvar))).mean(axis=-1)
        assert net.evaluate(x, x[:, :2])["loss"] == pytest.approx(ref.mean(), rel=1e-5)
        assert np.isfinite(net.score(x, x[:, :2]))


# -- one-line errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, match",
    [
        ([1.0, -2.0], r"class_weight: weights must be finite numbers >= 0, got -2.0 for class 1"),
        ({-1: 1.0}, r"class_weight: classes must be ints >= 0, got -1"),
        ("balanced", r"class_weight: must be a list of weights or a dict \{class: weight\}"),
        ([], r"class_weight: must not be empty"),
    ],
)
def test_bad_class_weight_fails_in_parse(value, match):
    with pytest.raises(InvalidArgument, match=match):
        spec.parse("adam", class_weight=value)


@pytest.mark.parametrize(
    "value, match",
    [
        ([1.0, 2.0, 3.0], r"class_weight: a list needs one weight per class, 2, got 3"),
        ({2: 1.0}, r"class_weight: class 2 is outside \[0, 2\) \(the output layer has 2 classes\)"),
        ([0, 0], r"class_weight: at least one class needs a positive weight"),
    ],
)
def test_class_weight_is_checked_against_the_output_layer(value, match):
    net = trainkit.Classifier([3, 2])
    with pytest.raises(InvalidArgument, match=match):
        net.train([np.zeros((4, 3), "float32"), np.zeros(4, "int64")], class_weight=value)


def test_class_weight_on_a_regressor_or_a_bare_trainer_is_refused():
    with pytest.raises(
        InvalidArgument, match=r"class_weight: only a Classifier's loss \(xent, hinge\)"
    ):
        trainkit.Regressor([3, 2]).train([np.zeros((4, 3), "float32")] * 2, class_weight=[1, 1])
    net = trainkit.Regressor([3, 2])
    task = net.task()
    with pytest.raises(
        InvalidArgument,
        match=r"class_weight: weighs a network's loss by class: give it to net.train",
    ):
        trainkit.Trainer(task.graph, task.loss, task.inputs, class_weight=[1.0, 2.0])


def test_gll_needs_an_even_output_width_and_losses_are_per_kind():
    with pytest.raises(
        InvalidArgument, match=r"loss: 'gll' needs an output layer of twice the targets' width"
    ):
        trainkit.Regressor([3, 3], loss="gll")
    with pytest.raises(
        InvalidArgument,
        match=r"unknown loss 'gll' for a Autoencoder; choose from mse, mae, huber, binary_xent",
    ):
        trainkit.Autoencoder([3, 2, 3], loss="gll")
    with pytest.raises(
        InvalidArgument, match=r"unknown loss 'huber' for a Classifier; choose from xent, hinge"
    ):
        trainkit.Classifier([3, 2], loss="huber")


def test_config_file_takes_class_weight_and_the_new_losses():
    c = load_text(
        '[model]\nkind = "Classifier"\nlayers = [3, 2]\nloss = "hinge"\n'
        "[training]\nclass_weight = [1.0, 3.0]\n",
        source="run.toml",
    )
    assert c.training_kwargs() == {"class_weight": [1.0, 3.0]}
    assert c.network().loss_name == "hinge"
    regressor = '[model]\nkind = "Regressor"\nlayers = [3, 2]\nloss = "huber"\n'
    assert load_text(regressor, source="run.toml").network().loss_name == "huber"
    assert c.check_training().options.class_weight == [1.0, 3.0]
    bad = load_text(regressor + "[training]\nclass_weight = [1.0, -3.0]\n", source="run.toml")
    with pytest.raises(ConfigError, match="class_weight: weights must be finite numbers >= 0"):
        bad.check_training()
