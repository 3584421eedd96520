"""Option mistakes are reported with what was wrong, before anything is compiled."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import regularizers
import trainkit
from trainkit.training import options


@pytest.fixture(autouse=True)
def no_compile(monkeypatch):
    def fail(self):
        raise AssertionError("compiled")

    monkeypatch.setattr(trainkit.Trainer, "_compile", fail)


def linear():
    x, y = pt.matrix("x"), pt.matrix("y")
    w = pytensor.shared(np.zeros((3, 2), "float32"), name="out.w")
    graph = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
    return graph, pt.mean((x @ w - y) ** 2), [x, y]


def make(**kwargs):
    options = dict(algo="sgd", progress=False, log=False, max_updates=3)
    options.update(kwargs)
    return trainkit.Trainer(*linear(), **options)


def data():
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    return [x, x[:, :2]]


def test_a_misspelt_option_names_the_closest():
    with pytest.raises(
        TypeError,
        match=r"max_update: unknown keyword argument; it is not a "
        r"hyperparameter of sgd.*\(closest: max_updates",
    ):
        make(max_update=5)
    net = trainkit.Regressor([3, 2])
    with pytest.raises(TypeError, match=r"validate_evry: unknown keyword.*closest: validate_every"):
        net.train(data(), validate_evry=5)


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(batch_size=0), "batch_size: must be a positive int, got 0"),
        (dict(batch_size=2.5), "batch_size: must be a positive int, got 2.5"),
        (dict(max_updates=True), "max_updates: must be a positive int or None, got True"),
        (dict(max_epochs=0), "max_epochs: must be a positive int or None, got 0"),
        (dict(validate_every=-3), "validate_every: must be a positive int or None, got -3"),
        (dict(patience=-1), "patience: must be a non-negative int, got -1"),
        (dict(min_improvement=-0.1), "min_improvement: must be a non-negative number, got -0.1"),
        (dict(shuffle=1), "shuffle: must be True or False, got 1"),
        (dict(seed=-2), "seed: must be a non-negative int, got -2"),
        (dict(restore_best="yes"), "restore_best: must be True or False, got 'yes'"),
        (
            dict(nan_policy="skipp"),
            r"nan_policy: unknown value 'skipp'; choose from raise, skip, stop \(closest: skip\)",
        ),
        (dict(metrics_format="json"), r"metrics_format: unknown value 'json'.*closest: jsonl"),
        (dict(progress="yes"), "progress: must be True, False or 'auto', got 'yes'"),
        (
            dict(save_progress="c", save_every="5x"),
            "save_every: must be a positive number of updates or a duration like '90s'",
        ),
        (dict(save_progress="c", save_every=0), "save_every: must be a positive int, got 0"),
        (
            dict(save_every=10),
            "save_every: needs save_progress, the checkpoint file to write; got save_every=10",
        ),
        (dict(resume=3), "resume: must be a file path or None, got 3"),
        (dict(lr_warmup=-1), "lr_warmup: must be a non-negative int, got -1"),
        (dict(lr_schedule="cosin"), r"lr_schedule: unknown schedule 'cosin'.*closest: cosine"),
        (dict(lr_schedule=dict(name="step")), r"lr_schedule: step needs step_size"),
        (dict(learning_rate=-0.1), r"learning_rate: must be >= 0, got -0.1"),
        (dict(callbacks=[3]), r"callbacks: item 0: a callback must have at least one of"),
    ],
)
def test_bad_option_values(option, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(**option)


def test_parse_every_reads_updates_and_durations():
    assert options.parse_every("save_every", 7) == ("updates", 7)
    assert options.parse_every("save_every", "1s") == ("seconds", 1.0)
    assert options.parse_every("save_every", "1.5m") == ("seconds", 90.0)
    assert options.parse_every("save_every", " 2h ") == ("seconds", 7200.0)
    with pytest.raises(ValueError, match="save_every"):
        options.parse_every("save_every", "0s")


def test_training_that_would_never_end_is_refused():
    t = make(max_updates=None, max_epochs=None, patience=None)
    with pytest.raises(ValueError, match="max_updates, max_epochs, patience: all are None"):
        t.train(data())


def generator():
    yield data()


@pytest.mark.parametrize("valid", [generator(), lambda: data()], ids=["generator", "callable"])
def test_validation_data_must_be_readable_again(valid):
    with pytest.raises(
        ValueError,
        match=r"valid: validation data must be arrays or a list of "
        r"batches \(it is read once per validation\), got ",
    ):
        make(max_updates=3).train(data(), valid)


def test_callable_training_data_needs_validation_data_and_an_epoch_size():
    with pytest.raises(
        ValueError,
        match="valid: give validation data when training data is a callable or an iterable",
    ):
        make(max_updates=3, epoch_size=2).train(lambda: data())
    with pytest.raises(
        ValueError, match="epoch_size: a callable source needs the number of batches per epoch"
    ):
        make(max_updates=3).train(lambda: data(), data())
    with pytest.raises(ValueError, match="epoch_size: only for a callable or iterable source"):
        make(max_updates=3, epoch_size=2).train(data())


def test_metric_names_must_not_collide():
    with pytest.raises(ValueError, match="metrics: two metrics would be named 'loss'"):
        trainkit.Trainer(*linear(), algo="sgd", loss_name="loss", max_updates=1)
    graph, loss, inputs = linear()
    with pytest.raises(ValueError, match="metrics: two metrics would be named 'lr'"):
        trainkit.Trainer(
            graph,
            loss,
            inputs,
            algo="sgd",
            max_updates=1,
            metrics={"lr": pt.mean(graph.outputs["out:out"])},
        )
