"""Batchnorm in data-parallel training normalises with the global batch's statistics.

Two processes (``mpiexec -n 2``, tests/distributed_worker.py) each hold half
of every batch of a regressor with one batchnorm layer; they must end where
one process on whole batches ends, to float32 rounding: the parameters after
plain-SGD updates (which, unlike Adam, would show a wrongly scaled
gradient), the running mean and variance, and the validation losses. The
last batch of an epoch (5 of 37 examples) splits 2 + 3, so the shards differ
in size.
"""

import numpy as np
import pytest
from test_distributed_mpi import (
    assert_replicas_identical,
    launch,
    one_process,
)

pytestmark = pytest.mark.distributed

OPTIONS = dict(
    algo="sgd",
    learning_rate=0.2,
    batch_size=8,
    seed=3,
    validate_every=2,
    max_updates=6,
    progress=False,
    log=False,
)
CONFIG = {"options": OPTIONS, "batchnorm": True}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("syncbn")
    return launch(tmp, {**CONFIG, "parallel": True}), one_process(tmp, CONFIG)


def test_two_processes_agree_bitwise(runs):
    assert_replicas_identical(runs[0])


@pytest.mark.parametrize(
    "name", ["hid2.running_mean", "hid2.running_var", "hid1.w", "hid2.g", "out.w"]
)
def test_global_statistics_match_one_process(runs, name):
    (state, _), _ = runs[0]
    reference, _ = runs[1]
    assert not np.allclose(reference[name], np.zeros_like(reference[name]))
    np.testing.assert_allclose(state[name], reference[name], rtol=1e-4, atol=1e-5)


def test_every_parameter_and_validation_loss_match(runs):
    (state, report), _ = runs[0]
    reference, ref_report = runs[1]
    for name in reference:
        np.testing.assert_allclose(state[name], reference[name], rtol=1e-4, atol=1e-5)
    assert len(report["pairs"]) == len(ref_report["pairs"]) == 3
    for (_, valid), (_, ref_valid) in zip(report["pairs"], ref_report["pairs"], strict=True):
        assert valid["loss"] == pytest.approx(ref_valid["loss"], rel=1e-4)


def test_sequences_use_the_global_real_steps(tmp_path):
    """Padded sequences with lengths and per-step weights: the statistics count real
    steps only, over both processes."""
    config = {**CONFIG, "sequences": True}
    runs = launch(tmp_path, {**config, "parallel": True})
    assert_replicas_identical(runs)
    (state, report), _ = runs
    reference, ref_report = one_process(tmp_path, config)
    for name in reference:
        np.testing.assert_allclose(state[name], reference[name], rtol=1e-4, atol=1e-5)
    for (_, valid), (_, ref_valid) in zip(report["pairs"], ref_report["pairs"], strict=True):
        assert valid["loss"] == pytest.approx(ref_valid["loss"], rel=1e-4)
