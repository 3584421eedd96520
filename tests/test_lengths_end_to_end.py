"""Sequence lengths end to end: score, evaluate, predict and the CLI's end-of-run line.

Padded steps must enter no loss and no metric. Each check compares with a
numpy reference that never sees the padding (each sequence cut to its
length) or that masks it explicitly, so a score that counts padded steps,
or reads lengths as sample weights, fails.
"""

import json
import re

import numpy as np
import pytest
from test_cli import invoke, runner

import trainkit
from trainkit.cli import commands as cli

QUIET = dict(progress=False, log=False)
T = 6


def sequences(rng, n, features=2):
    """Padded sequences whose padding is loud (large values), and their lengths."""
    lengths = rng.integers(1, T + 1, size=n).astype("int32")
    x = rng.normal(size=(n, T, features)).astype("float32")
    for b, length in enumerate(lengths):
        x[b, length:] = 50.0
    return x, lengths


def last_step_reference(net, x, lengths):
    """Class probabilities of an RNN classifier in numpy (float64), each sequence
    run over its own steps only: ``h_t = tanh(x_t W + h_{t-1} U + b)``, softmax."""
    p = {name: np.asarray(v.get_value(), np.float64) for name, v in net.params.items()}
    rows = []
    for b, length in enumerate(lengths):
        h = np.zeros(p["hid1.hh"].shape[0])
        for t in range(length):
            h = np.tanh(x[b, t] @ p["hid1.xh"] + h @ p["hid1.hh"] + p["hid1.b"])
        logits = h @ p["out.w"] + p["out.b"]
        rows.append(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())
    return np.stack(rows)


def masked_mean(errors, mask, weights=None):
    w = mask.astype(np.float64) * (1.0 if weights is None else weights)
    return float((w * errors).sum() / w.sum())


# -- Python: score and evaluate ----------------------------------------------------------


@pytest.fixture(scope="module")
def seq2seq():
    """A sequence-to-sequence regressor with lengths, trained a little."""
    rng = np.random.default_rng(5)
    x, lengths = sequences(rng, 32)
    y = np.cumsum(x[..., :1], axis=1).astype("float32")
    y[np.arange(T)[None, :] >= lengths[:, None]] = -40.0  # padding targets far off
    weights = rng.uniform(0.2, 2.0, size=(32, T)).astype("float32")
    net = trainkit.Regressor([dict(size=2, lengths=True), dict(size=5, form="gru"), 1], seed=3)
    net.train([x, y, lengths, weights], algo="sgd", learning_rate=0.01, max_updates=3, **QUIET)
    return net, x, y, lengths, weights


def test_score_and_evaluate_of_a_sequence_output_count_real_steps_only(seq2seq):
    net, x, y, lengths, weights = seq2seq
    out = net.predict(x, lengths).astype(np.float64)
    mask = np.arange(T)[None, :] < lengths[:, None]
    squared = ((out - y) ** 2)[..., 0]
    mse = masked_mean(squared, mask, weights)
    # R² over real steps only, weighted
    w = (mask * weights)[..., None].reshape(-1)
    yy, oo = y.reshape(-1).astype(np.float64), out.reshape(-1)
    mean = (w * yy).sum() / w.sum()
    r2 = 1 - (w * (yy - oo) ** 2).sum() / (w * (yy - mean) ** 2).sum()

    metrics = net.evaluate(x, y, weights, lengths=lengths)
    assert metrics["mse"] == pytest.approx(mse, rel=1e-6)
    assert metrics["loss"] == pytest.approx(mse, rel=1e-6)
    assert metrics["r2"] == pytest.approx(r2, rel=1e-6)
    assert net.score(x, y, weights=weights, lengths=lengths) == pytest.approx(r2, rel=1e-6)
    # batched evaluation sees the same lengths
    assert net.evaluate(x, y, weights, batch_size=5, lengths=lengths)["mse"] == pytest.approx(mse)
    # the padding is loud: ignoring lengths gives another answer
    assert abs(net.evaluate(x, y, weights)["mse"] - mse) > 0.1 * mse


def test_a_last_step_classifier_scores_each_sequence_at_its_own_end():
    rng = np.random.default_rng(7)
    x, lengths = sequences(rng, 40)
    labels = (x[np.arange(40), lengths - 1, 0] > 0).astype("int64")
    net = trainkit.Classifier(
        [dict(size=2, lengths=True), dict(size=6, form="rnn", return_sequences=False), 2],
        seed=1,
    )
    net.train([x, labels, lengths], algo="sgd", learning_rate=0.05, max_updates=3, **QUIET)
    proba = last_step_reference(net, x, lengths)
    accuracy = float((proba.argmax(-1) == labels).mean())
    assert net.score(x, labels, lengths=lengths) == pytest.approx(accuracy)
    assert net.evaluate(x, labels, lengths=lengths)["acc"] == pytest.approx(accuracy)
    xent = -np.log(proba[np.arange(40), labels]).mean()
    assert net.evaluate(x, labels, lengths=lengths)["loss"] == pytest.approx(xent, rel=1e-5)


def test_lengths_for_a_model_without_them_are_refused():
    net = trainkit.Regressor([2, dict(size=3, form="rnn"), 1])
    x = np.zeros((4, T, 2), "float32")
    with pytest.raises(TypeError, match="lengths: this model takes no lengths"):
        net.evaluate(x, np.zeros((4, T, 1), "float32"), lengths=np.full(4, 2, "int32"))


# -- bad lengths and weights: one line, the same in train and predict --------------------


@pytest.fixture(scope="module")
def last_step():
    return trainkit.Regressor(
        [dict(size=2, lengths=True), dict(size=3, form="rnn", return_sequences=False), 1]
    )


TOO_LONG = r"array 2 \('lengths'\) has lengths out of range: found 9, allowed 0..6 \(the time steps of 'x'\)"


def test_lengths_beyond_the_padded_length_are_refused_by_train_and_predict_alike(last_step):
    x = np.zeros((3, T, 2), "float32")
    y = np.zeros((3, 1), "float32")
    lengths = np.array([2, 9, 3], "int32")
    with pytest.raises(ValueError, match="^train: " + TOO_LONG + "$"):
        last_step.train([x, y, lengths], max_updates=1, **QUIET)
    with pytest.raises(
        ValueError, match=r"^lengths: array 1 \('lengths'\) has lengths out of range: found 9"
    ):
        last_step.predict(x, lengths)
    with pytest.raises(ValueError, match="^evaluate: " + TOO_LONG + "$"):
        last_step.evaluate(x, y, lengths=lengths)


def test_a_lengths_array_is_never_called_class_labels(last_step):
    x = np.zeros((3, T, 2), "float32")
    y = np.zeros((3, 1), "float32")
    for lengths, message in [
        (np.array([2.5, 1, 1]), "must hold integer sequence lengths, got float64 values 2.5"),
        (np.array(["a", "b", "c"]), "has dtype <U1; expected integer sequence lengths"),
        (np.array([-1, 1, 1]), "has lengths out of range: found -1, allowed 0..6"),
    ]:
        for call in (
            lambda lengths=lengths: last_step.train([x, y, lengths], max_updates=1, **QUIET),
            lambda lengths=lengths: last_step.predict(x, lengths),
        ):
            with pytest.raises((TypeError, ValueError)) as caught:
                call()
            assert message in str(caught.value)
            assert "label" not in str(caught.value)


def test_all_zero_sample_weights_are_one_clear_error(seq2seq):
    net, x, y, lengths, _ = seq2seq
    zero = np.zeros((len(x), T), "float32")
    message = r"array 3 \('weights'\) is 0 everywhere; at least one sample weight must be positive"
    with pytest.raises(ValueError, match="^train: " + message):
        net.train([x, y, lengths, zero], max_updates=1, **QUIET)
    with pytest.raises(ValueError, match="^valid: " + message):
        net.train([x, y, lengths], [x, y, lengths, zero], max_updates=1, **QUIET)
    with pytest.raises(ValueError, match=r"^evaluate: array 3 \('weights'\) is 0 everywhere"):
        net.evaluate(x, y, zero, lengths=lengths)
    with pytest.raises(ValueError, match=r"^score: array 2 \('weights'\) is 0 everywhere"):
        net.score(x, y, weights=zero, lengths=lengths)
    # weights that are 0 on every real step leave nothing to average either
    real = np.arange(T)[None, :] < lengths[:, None]
    padding_only = (~real).astype("float32")
    with pytest.raises(ValueError, match="^evaluate: every real step .* weighs 0"):
        net.evaluate(x, y, padding_only, lengths=lengths)
    weights = np.zeros(5, "float32")
    classifier = trainkit.Classifier([3, 2])
    with pytest.raises(ValueError, match=r"^score: array 2 \('weights'\) is 0 everywhere"):
        classifier.score(np.zeros((5, 3), "float32"), np.zeros(5, "int64"), weights=weights)


# -- the command line ----------------------------------------------------------------------

SEQ2SEQ = """\
[model]
kind = "Regressor"
layers = [{size = 2, lengths = true}, {size = 6, form = "gru"}, 1]
seed = 2

[data]
train = "train.npz"
valid = "valid.npz"
lengths = "steps"
weights = "w"

[training]
algo = "sgd"
learning_rate = 0.01
batch_size = 8
max_updates = 4
validate_every = 2
"""

LAST_STEP = """\
[model]
kind = "Classifier"
layers = [{size = 2, lengths = true}, {size = 6, form = "rnn", return_sequences = false}, 2]
seed = 2

[data]
train = "train.npz"
valid = "valid.npz"
y = "labels"
lengths = "steps"

[training]
algo = "sgd"
learning_rate = 0.05
batch_size = 8
max_updates = 4
validate_every = 2
"""


def printed_score(output):
    found = re.search(r"held-out (R²|accuracy) (-?\d+\.\d{4}) \((\d+) examples\)", output)
    assert found, output
    return float(found.group(2)), int(found.group(3))


def write_seq2seq(folder, rng):
    for name, n in (("train", 32), ("valid", 20)):
        x, lengths = sequences(rng, n)
        y = np.cumsum(x[..., :1], axis=1).astype("float32")
        y[np.arange(T)[None, :] >= lengths[:, None]] = -40.0
        w = rng.uniform(0.2, 2.0, size=(n, T)).astype("float32")
        np.savez(folder / f"{name}.npz", x=x, y=y, steps=lengths, w=w)


def test_cli_seq2seq_with_lengths_and_weights_scores_like_net_score(tmp_path):
    write_seq2seq(tmp_path, np.random.default_rng(11))
    (tmp_path / "run.toml").write_text(SEQ2SEQ)
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    score, examples = printed_score(result.output)
    net = trainkit.load(tmp_path / "run" / "model.npz")
    valid = np.load(tmp_path / "valid.npz")
    x, y, lengths, w = valid["x"], valid["y"], valid["steps"], valid["w"]
    assert examples == 20
    assert score == pytest.approx(net.score(x, y, weights=w, lengths=lengths), abs=5e-5)
    assert abs(score - net.score(x, y, weights=w)) > 1e-3  # the lengths matter here

    args = ["evaluate", tmp_path / "run", tmp_path / "valid.npz", "--json"]
    result = invoke(*args, "--lengths", "steps", "--weights", "w")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.output)
    expected = net.evaluate(x, y, w, lengths=lengths)
    assert metrics == pytest.approx(expected, rel=1e-6)
    assert metrics["r2"] == pytest.approx(score, abs=5e-5)
    # without --lengths: a note on stderr says every step is read as real
    result = invoke(*args, "--weights", "w")
    assert result.exit_code == 0, result.stderr
    assert "takes sequence lengths; none given (--lengths NAME)" in result.stderr

    out = tmp_path / "out.npy"
    result = invoke(
        "predict",
        tmp_path / "run",
        tmp_path / "valid.npz",
        "-o",
        out,
        "--lengths",
        "steps",
        "--batch-size",
        7,
    )
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(out), net.predict(x, lengths), rtol=1e-5, atol=1e-6)


def test_cli_last_step_classifier_prints_the_true_held_out_accuracy(tmp_path):
    rng = np.random.default_rng(12)
    for name, n in (("train", 32), ("valid", 24)):
        x, lengths = sequences(rng, n)
        labels = (x[np.arange(n), lengths - 1, 0] > 0).astype("int64")
        np.savez(tmp_path / f"{name}.npz", x=x, labels=labels, steps=lengths)
    (tmp_path / "run.toml").write_text(LAST_STEP)
    result = invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    score, _ = printed_score(result.output)
    net = trainkit.load(tmp_path / "run" / "model.npz")
    valid = np.load(tmp_path / "valid.npz")
    reference = last_step_reference(net, valid["x"], valid["steps"]).argmax(-1)
    assert score == pytest.approx(float((reference == valid["labels"]).mean()), abs=5e-5)

    args = ["evaluate", tmp_path / "run", tmp_path / "valid.npz", "--y", "labels", "--json"]
    metrics = json.loads(invoke(*args, "--lengths", "steps").output)
    assert metrics["acc"] == pytest.approx(score, abs=5e-5)

    out = tmp_path / "labels.npy"
    result = invoke(
        "predict", tmp_path / "run", tmp_path / "valid.npz", "-o", out, "--lengths", "steps"
    )
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(out), reference)


def one_line(result):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_refuses_lengths_beyond_the_padding_and_all_zero_weights(tmp_path):
    write_seq2seq(tmp_path, np.random.default_rng(13))
    data = dict(np.load(tmp_path / "train.npz"))
    data["steps"] = data["steps"].copy()
    data["steps"][3] = 9
    np.savez(tmp_path / "long.npz", **data)
    (tmp_path / "run.toml").write_text(SEQ2SEQ.replace('train = "train.npz"', 'train = "long.npz"'))
    line = one_line(invoke("train", tmp_path / "run.toml", "--run-dir", tmp_path / "a"))
    assert "found 9, allowed 0..6 (the time steps of 'x')" in line, line

    (tmp_path / "ok.toml").write_text(SEQ2SEQ)
    assert invoke("train", tmp_path / "ok.toml", "--run-dir", tmp_path / "ok").exit_code == 0
    line = one_line(
        invoke(
            "predict",
            tmp_path / "ok",
            tmp_path / "long.npz",
            "-o",
            tmp_path / "p.npy",
            "--lengths",
            "steps",
        )
    )
    assert "found 9, allowed 0..6 (the time steps of 'x')" in line, line
    line = one_line(
        invoke("evaluate", tmp_path / "ok", tmp_path / "long.npz", "--lengths", "steps")
    )
    assert "found 9, allowed 0..6 (the time steps of 'x')" in line, line

    data = dict(np.load(tmp_path / "valid.npz"))
    data["w"] = np.zeros_like(data["w"])
    np.savez(tmp_path / "valid.npz", **data)
    line = one_line(invoke("train", tmp_path / "ok.toml", "--run-dir", tmp_path / "b"))
    assert "is 0 everywhere; at least one sample weight must be positive" in line, line


def test_cli_lengths_for_a_model_without_them(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 4)).astype("float32")
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype("int64"), steps=np.ones(16, "int32"))
    net = trainkit.Classifier([4, 2])
    net.save(tmp_path / "m.npz")
    line = one_line(
        runner().invoke(
            cli.cli,
            [
                "predict",
                str(tmp_path / "m.npz"),
                str(tmp_path / "d.npz"),
                "-o",
                str(tmp_path / "o.npy"),
                "--lengths",
                "steps",
            ],
        )
    )
    assert "--lengths" in line and "takes no sequence lengths" in line, line
