"""Recurrent layers: fused op vs scan, variable lengths, bidirectional layers (issue 8)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import regularizers
import trainkit

QUIET = dict(progress=False, log=False)
FORMS = ["rnn", "lstm", "gru"]


def _grads_and_outputs(net, impl, data):
    """Every named output and the gradient of a loss touching all of them, under ``impl``."""
    graph = net.graph(impl=impl)
    rng = np.random.default_rng(11)
    total = 0
    for name, var in graph.outputs.items():
        if name == "in:out":
            continue
        shape = [data[0].shape[0], data[0].shape[1], None][: var.ndim]
        w = rng.normal(size=[*shape[:-1], 1]).astype(var.dtype)
        total = total + (var * w).sum() + (var**2).sum() * 0.1
    grads = pytensor.grad(total, list(net.params.values()))
    inputs = [net.x] + ([] if net.lengths is None else [net.lengths])
    with pytensor.config.change_flags(floatX="float64"):
        f = pytensor.function(inputs, [*graph.outputs.values(), *grads])
    return dict(zip([*graph.outputs, *net.params], f(*data), strict=True))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(lengths=True),
        dict(lengths=True, bidirectional=True, return_sequences=False),
        dict(bidirectional=True, merge="mean"),
    ],
    ids=["full", "lengths", "bi-lengths-last", "bi-mean"],
)
def test_fused_and_scan_layers_agree(form, options):
    options = dict(options)
    lengths = options.pop("lengths", False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 2))
    data = [x] + ([np.array([4, 1, 2], "int32")] if lengths else [])
    with pytensor.config.change_flags(warn_float64="ignore"):
        net = trainkit.Regressor(
            [dict(size=2, lengths=lengths), dict(size=3, form=form, **options), 2],
            dtype="float64",
            seed=2,
        )
        fused = _grads_and_outputs(net, "fused", data)
        scan = _grads_and_outputs(net, "scan", data)
    assert list(fused) == list(scan)
    for name in fused:
        np.testing.assert_allclose(fused[name], scan[name], rtol=1e-10, atol=1e-10, err_msg=name)


def test_impl_option_and_errors():
    net = trainkit.Regressor([2, dict(size=3, form="lstm", impl="scan"), 1])
    assert net.layers[0].spec()["impl"] == "scan"
    assert "impl" not in trainkit.Regressor([2, dict(size=3, form="lstm"), 1]).layers[0].spec()
    # an activation the fused op lacks falls back to scan
    soft = trainkit.Regressor([2, dict(size=3, form="rnn", activation="softplus"), 1])
    assert soft.layers[0].uses_scan()
    with pytest.raises(ValueError, match="impl='fused' does not implement activation 'softplus'"):
        trainkit.Regressor([2, dict(size=3, form="rnn", activation="softplus", impl="fused"), 1])
    with pytest.raises(ValueError, match="impl must be one of auto, fused, scan, got 'fuse'"):
        trainkit.Regressor([2, dict(size=3, form="rnn", impl="fuse"), 1])
    with pytest.raises(ValueError, match="merge must be one of concat, sum, mean"):
        trainkit.Regressor([2, dict(size=3, form="rnn", bidirectional=True, merge="avg"), 1])
    with pytest.raises(ValueError, match="lengths=True needs sequences"):
        trainkit.Regressor([dict(size=2, lengths=True), 3, 1])


def test_bidirectional_names_sizes_and_marks():
    net = trainkit.Regressor([2, dict(size=3, form="lstm", bidirectional=True, name="enc"), 1])
    g = net.graph()
    assert list(g.outputs) == [
        "in:out",
        "enc:fwd",
        "enc:fwd_cell",
        "enc:bwd",
        "enc:bwd_cell",
        "enc:out",
        "out:pre",
        "out:out",
    ]
    assert g.recurrent == ("enc:fwd", "enc:bwd") and g.hidden == ("enc:out",)
    assert net.params["out.w"].get_value().shape == (6, 1)
    assert set(net.params) >= {"enc.xh_bwd", "enc.hh_bwd", "enc.b_bwd"}
    x = np.random.default_rng(0).normal(size=(2, 4, 2)).astype("float32")
    out = pytensor.function([net.x], [g.outputs[k] for k in ("enc:fwd", "enc:bwd", "enc:out")])
    fwd, bwd, merged = out(x)
    np.testing.assert_array_equal(merged, np.concatenate([fwd, bwd], axis=-1))
    # the backward direction run on the time-reversed input is the forward one, reversed
    same = trainkit.Regressor([2, dict(size=3, form="lstm", name="enc"), 1])
    same.set_params(
        {
            "enc.xh": net.params["enc.xh_bwd"].get_value(),
            "enc.hh": net.params["enc.hh_bwd"].get_value(),
            "enc.b": net.params["enc.b_bwd"].get_value(),
            "out.w": np.zeros((3, 1), "float32"),
            "out.b": np.zeros(1, "float32"),
        }
    )
    h = pytensor.function([same.x], same.graph().outputs["enc:out"])(x[:, ::-1])
    np.testing.assert_allclose(bwd, h[:, ::-1], rtol=1e-6, atol=1e-6)


def _sum_sq(values):
    return float(sum(np.sum(np.square(v)) for v in values))


def test_padding_is_invisible():
    """Padded steps change no state, no loss, no penalty, no monitor, no gradient."""
    layers = [
        dict(size=2, lengths=True),
        dict(size=3, form="gru", bidirectional=True),
        dict(size=3, form="lstm"),
        2,
    ]
    net = trainkit.Regressor(layers, seed=5)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 2)).astype("float32")
    y = rng.normal(size=(3, 5, 2)).astype("float32")
    lengths = np.array([5, 2, 3], "int32")
    task = net.task()
    regs = regularizers.from_kwargs(
        recurrent_norm=1.0, recurrent_state=1.0, hidden_l2=1.0, hidden_l1=1.0
    )
    terms = [task.loss] + [r.loss(task.graph) for r in regs]
    from trainkit.training import monitors

    mons = monitors.build({"hid*:out": ("mean", "std", "max", "min", "<0.1", "rms")}, task.graph)
    grads = pytensor.grad(sum(terms), list(net.params.values()))
    f = pytensor.function(task.inputs, [*terms, *mons.values(), *grads])
    base = f(x, y, lengths)
    # garbage at padded steps of x and y changes nothing
    x2, y2 = x.copy(), y.copy()
    for b, n in enumerate(lengths):
        x2[b, n:] = 100.0
        y2[b, n:] = -7.0
    for a, b in zip(base, f(x2, y2, lengths), strict=True):
        np.testing.assert_array_equal(a, b)
    # every sequence as long as its real steps: the same numbers as without padding
    short = np.array([2, 2, 2], "int32")
    for a, b in zip(f(x, y, short), f(x[:, :2], y[:, :2], short), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    full = trainkit.Regressor([2, *layers[1:]], seed=5)
    ft = full.task()
    terms_full = [ft.loss] + [r.loss(ft.graph) for r in regs]
    g = pytensor.function(ft.inputs, terms_full)
    np.testing.assert_allclose(
        f(x, y, short)[: len(terms)], g(x[:, :2], y[:, :2]), rtol=1e-5, atol=1e-6
    )


def test_last_and_predict_with_lengths():
    net = trainkit.Regressor(
        [dict(size=2, lengths=True), dict(size=3, form="lstm", return_sequences=False), 1]
    )
    x = np.random.default_rng(2).normal(size=(3, 4, 2)).astype("float32")
    lengths = np.array([4, 1, 3], "int32")
    out = net.predict(x, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(out[b], net.predict(x[b : b + 1, :n])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.predict(x), net.predict(x, np.full(3, 4, "int32")))
    with pytest.raises(
        ValueError,
        match=r"lengths: array 1 \('lengths'\) has lengths out of range: found 5, allowed 0..4",
    ):
        net.predict(x, np.array([5, 1, 1], "int32"))
    plain = trainkit.Regressor([2, dict(size=3, form="lstm"), 1])
    with pytest.raises(TypeError, match="lengths: this model takes no lengths"):
        plain.predict(x, lengths)


def test_save_and_load_bidirectional_with_lengths(tmp_path):
    layers = [dict(size=2, lengths=True), dict(size=3, form="gru", bidirectional=True), 1]
    net = trainkit.Regressor(layers, seed=3)
    path = tmp_path / "m.npz"
    net.save(path)
    back = trainkit.load(path)
    x = np.random.default_rng(0).normal(size=(2, 3, 2)).astype("float32")
    lengths = np.array([3, 2], "int32")
    np.testing.assert_array_equal(back.predict(x, lengths), net.predict(x, lengths))
    assert back.config()["layers"][0] == {"size": 2, "lengths": True}


def test_contractive_through_recurrent_layers():
    """Second derivatives: fused (through its scan reference) and scan give the same run."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3, 2)).astype("float32")
    y = rng.normal(size=(6, 3, 1)).astype("float32")
    lengths = np.array([3, 2, 1, 3, 3, 2], "int32")
    losses = []
    for impl in ("auto", "scan"):
        net = trainkit.Regressor(
            [
                dict(size=2, lengths=True),
                dict(size=2, form="rnn", impl=impl, bidirectional=True),
                1,
            ],
            seed=1,
        )
        _, valid = net.train(
            [x, y, lengths], algo="adam", contractive=0.1, max_updates=1, shuffle=False, **QUIET
        )
        losses.append(valid["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_learns_a_memory_task_on_variable_lengths():
    """Recall the first input of each sequence at its own last real step."""
    rng = np.random.default_rng(0)
    n, T = 256, 8
    x = rng.normal(size=(n, T, 1)).astype("float32")
    lengths = rng.integers(2, T + 1, size=n).astype("int32")
    for b, L in enumerate(lengths):
        x[b, L:] = rng.normal(size=(T - L, 1)) * 5  # loud padding that must be ignored
    y = x[:, 0].copy()
    net = trainkit.Regressor(
        [dict(size=1, lengths=True), dict(size=8, form="gru", return_sequences=False), 1], seed=0
    )
    net.train(
        [x, y, lengths],
        algo="adam",
        learning_rate=0.03,
        batch_size=32,
        max_updates=300,
        patience=None,
        recurrent_norm=0.01,
        **QUIET,
    )
    assert net.score(x, y, lengths=lengths) > 0.9


def test_graph_masks_reach_penalties():
    z = pt.as_tensor(np.array([[[3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]], "float32"))
    mask = pt.as_tensor(np.array([[1.0, 1.0, 0.0]], "float32"))
    g = regularizers.Graph(
        {"rnn:out": z}, {}, recurrent=["rnn:out"], hidden=["rnn:out"], masks={"rnn:out": mask}
    )
    assert float(regularizers.build("recurrent_norm", weight=1).loss(g).eval()) == 16.0
    assert float(regularizers.build("hidden_l2", weight=1).loss(g).eval()) == 6.5
    with pytest.raises(ValueError, match="masks names 'x:out', which is not an output"):
        regularizers.Graph({"rnn:out": z}, {}, masks={"x:out": mask})
