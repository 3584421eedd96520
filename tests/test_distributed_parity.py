"""Data parallel on two processes against one, where the split, weighted step matters.

Two processes run the split step (gradients, one all-reduce of the weighted
sums, then the update); one process runs the one-function step. They must
agree to float32 rounding with plain SGD (which, unlike Adam, sees a gradient
off by a constant factor) on a GRU regressor over padded sequences with
lengths and per-step sample weights (each shard's weight is the sum of its
real steps' weights, not its number of rows), total-norm gradient clipping and
``max_norm``. Dropout draws its own masks on each process, so a run with
dropout is compared with one process on what must still agree: the replicas,
the number of updates, the loss's scale. Resuming across process counts
with dropout (2 → 1, 1 → 2) continues from the checkpoint's parameters.
Workers compile with the default backend (JAX), as a user's do.
"""

import numpy as np
import pytest
from test_distributed_mpi import (
    assert_close,
    assert_replicas_identical,
    launch,
    one_process,
)

import trainkit

pytestmark = pytest.mark.distributed

SGD = dict(
    algo="sgd",
    learning_rate=0.05,
    batch_size=8,
    seed=3,
    validate_every=3,
    max_updates=9,
    shuffle=False,
    max_total_gradient_norm=2.0,
    max_norm=1.5,
    progress=False,
    log=False,
)


def moved(state, reference):
    return max(float(np.abs(state[n] - reference[n]).max()) for n in reference)


def test_two_processes_agree_with_one_on_sequences_with_lengths_weights_and_clipping(tmp_path):
    config = {"parallel": True, "sequences": True, "options": SGD}
    runs = launch(tmp_path, config)
    assert_replicas_identical(runs)
    assert runs[0][1]["pid"] != runs[1][1]["pid"]
    state, report = runs[0]
    single, single_report = one_process(tmp_path, {**config, "parallel": False})
    assert_close(state, single)
    assert report["step"] == single_report["step"] == 9
    for (tm, vm), (tm1, vm1) in zip(report["pairs"], single_report["pairs"], strict=True):
        assert vm["loss"] == pytest.approx(vm1["loss"], rel=1e-5)
        assert tm["step"] == tm1["step"]
    # clipping bound somewhere: without it the runs end elsewhere
    unclipped = {k: v for k, v in SGD.items() if k not in ("max_total_gradient_norm", "max_norm")}
    free, _ = one_process(tmp_path, {"sequences": True, "options": unclipped}, name="free")
    assert moved(free, single) > 1e-3


def test_two_processes_with_dropout_keep_replicas_identical_and_train_alike(tmp_path):
    options = dict(SGD, hidden_dropout=0.3)
    config = {"parallel": True, "sequences": True, "options": options}
    runs = launch(tmp_path, config)
    assert_replicas_identical(runs)
    assert runs[0][1]["generators"] != runs[1][1]["generators"]  # own masks per process
    single, single_report = one_process(tmp_path, {**config, "parallel": False})
    state, report = runs[0]
    assert report["step"] == single_report["step"] == 9
    # other masks, so other numbers, but the same training: the validation loss (on
    # the clean network) within 10% of one process's, and the parameters close
    assert report["pairs"][-1][1]["loss"] == pytest.approx(
        single_report["pairs"][-1][1]["loss"], rel=0.1
    )
    np.testing.assert_allclose(state["hid1.xh"], single["hid1.xh"], atol=0.05)


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)], ids=["2-to-1", "1-to-2"])
def test_resume_with_dropout_on_another_number_of_processes(tmp_path, first, then):
    checkpoint = tmp_path / "run.ckpt"
    options = dict(SGD, hidden_dropout=0.3)

    def run(n, name, **extra):
        config = {
            "parallel": n > 1,
            "sequences": True,
            "record_start": True,
            "options": dict(options, **extra),
        }
        if n == 1:
            return [one_process(tmp_path, config, name=name)]
        return launch(tmp_path, config, n=n, name=name)

    run(first, "first", max_updates=4, save_progress=str(checkpoint))
    arrays, meta = trainkit.archive.load(checkpoint)
    assert meta["step"] == 4 and meta.get("ranks", 1) == first
    resumed = run(then, "resumed", resume=str(checkpoint))
    assert_replicas_identical(resumed)
    for state, report in resumed:
        # every process starts from the checkpoint's parameters and optimizer state
        starts = [name for name in state if name.startswith("start/")]
        assert starts
        for name in starts:
            key = "state/" + name.removeprefix("start/")
            assert np.array_equal(state[name], arrays[key]), name
        assert report["step"] == 9
        assert [pair[0]["step"] for pair in report["pairs"]] == [6, 9]
        assert all(np.isfinite(v).all() for v in state.values())
    if then > 1:
        assert resumed[0][1]["generators"] != resumed[1][1]["generators"]
