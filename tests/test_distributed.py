"""The communicator seam and sharding, on one process (no MPI needed)."""

import sys

import numpy as np
import pytest
from helpers import QUIET

import trainkit
from trainkit.distributed import Communicator, Identity, from_name, shard_rows, shard_slice
from trainkit.training.options import parse
from trainkit.training.parallel import quiet_options


def test_identity_collectives_give_back_what_they_are_given():
    comm = Identity()
    assert (comm.rank, comm.size, comm.is_root) == (0, 1, True)
    array = np.arange(4, dtype="float32")
    summed = comm.allreduce_sum(array)
    assert summed.dtype == array.dtype and np.array_equal(summed, array)
    assert summed is not array  # a new array, as from a real reduction
    assert comm.broadcast({"a": [1, 2]}) == {"a": [1, 2]}
    assert comm.gather("state") == ["state"]
    assert comm.barrier() is None
    assert comm.any(True) and not comm.any(False)
    assert comm.all(True) and not comm.all(False)
    with pytest.raises(ValueError, match=r"root: must be a rank in 0..0, got 1"):
        comm.broadcast(1, root=1)


def test_a_communicator_without_collectives_says_so():
    with pytest.raises(NotImplementedError):
        Communicator().allreduce_sum(np.zeros(1))


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_shards_cover_every_row_once_in_order(n, size):
    slices = [shard_slice(n, r, size) for r in range(size)]
    rows = np.concatenate([np.arange(n)[s] for s in slices])
    assert np.array_equal(rows, np.arange(n))
    lengths = [s.stop - s.start for s in slices]
    assert max(lengths) - min(lengths) <= 1


def test_shard_rows_takes_the_same_rows_of_every_array():
    x, y = np.arange(10).reshape(5, 2), np.arange(5)
    assert shard_rows([x, y], 0, 1)[0] is x  # one process: the batch itself
    xs, ys = shard_rows([x, y], 1, 2)
    assert np.array_equal(xs, x[2:]) and np.array_equal(ys, y[2:])


def test_data_parallel_option_names_an_engine():
    assert parse({}).data_parallel is None
    assert parse({"data_parallel": "mpi"}).data_parallel == "mpi"
    comm = Identity()
    assert parse({"data_parallel": comm}).data_parallel is comm
    with pytest.raises(
        ValueError,
        match=r"data_parallel: unknown value 'mpj'; choose from mpi, a "
        r"trainkit.distributed.Communicator, or None \(closest: mpi\)",
    ):
        parse({"data_parallel": "mpj"})
    assert from_name(None) is None and from_name(comm) is comm


def test_a_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'trainkit\[mpi\]'"):
        from_name("mpi")


def test_other_ranks_show_and_write_nothing_but_checkpoints():
    options = parse({"run_dir": ".", "progress": True, "log": True, "save_progress": "c.ckpt"})
    quiet = quiet_options(options)
    assert (quiet.progress, quiet.log, quiet.run_dir) == (False, False, None)
    assert quiet.save_progress == "c.ckpt" and options.log is True


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 3)).astype("float32")
    return [x, (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")]


def final_state(**kwargs):
    net = trainkit.Regressor([3, (5, "tanh"), 2])
    options = dict(
        algo="adam",
        learning_rate=0.02,
        batch_size=8,
        seed=3,
        validate_every=3,
        max_updates=9,
        hidden_dropout=0.2,
        max_total_gradient_norm=0.5,
        max_norm=2.0,
        lr_schedule=dict(name="plateau", patience=0, factor=0.5, threshold=0.5),
    )
    options.update(kwargs)
    net.train(data(), **QUIET, **options)
    return {
        name: var.get_value().bit_generator.state if name.endswith("/rng") else var.get_value()
        for name, var in net.trainer.state_variables.items()
    }


def assert_bitwise(a, b):
    assert list(a) == list(b)
    for name in a:
        if isinstance(a[name], dict):
            assert a[name] == b[name], name
        else:
            assert np.array_equal(a[name], b[name]), name


def test_the_split_step_of_one_process_is_the_one_function_step_bitwise():
    """What 1-rank data parallel rests on: gradients-then-apply (the data-parallel step)
    makes the same updates as the one function, optimizer state and schedule included."""
    plain = final_state()
    assert_bitwise(final_state(split_update=True), plain)
    # a group of one process is the plain trainer
    assert_bitwise(final_state(data_parallel=Identity()), plain)


def test_the_command_line_finds_its_launcher_in_the_environment():
    from trainkit.cli import distributed as cli

    assert cli.launched_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert cli.launched_size({"PMI_SIZE": "2"}) == 2
    assert cli.launched_size({"SLURM_NTASKS": "8"}) == 1  # a batch script, not a task
    assert cli.launched_size({"SLURM_NTASKS": "8", "SLURM_PROCID": "3"}) == 8
    assert cli.communicator_from_environment({}) is None
    assert cli.is_writer(None) and cli.is_writer(Identity())
    assert cli.agreed(Identity(), lambda: "runs/a") == "runs/a"
    with pytest.raises(ValueError, match="picked on rank 0"):
        cli.agreed(Identity(), lambda: (_ for _ in ()).throw(ValueError("picked on rank 0")))
    with pytest.raises(RuntimeError), cli.abort_on_error(None):
        raise RuntimeError("one process: the error itself")

    class Aborted(Exception):
        pass

    class Group(Identity):
        size = 2

        def abort(self, code=1):
            raise Aborted(code)

    with pytest.raises(Aborted), cli.abort_on_error(Group()):
        raise RuntimeError("on one process of two: the job ends")
    with pytest.raises(ValueError), cli.abort_on_error(Group(), expected=(ValueError,)):
        raise ValueError("raised alike everywhere: passes through")


def test_accumulated_updates_advance_the_optimizer_state_the_checkpoint_holds():
    """The apply half updates the assembly's own optimizer state and shared learning
    rate (it once built a second optimizer, invisible to checkpoints and schedules)."""
    state = final_state(accumulate=2, hidden_dropout=0.0, lr_schedule="cosine", max_updates=6)
    assert int(state["adam/t"]) == 6
    assert np.any(state["out.w/adam_m"] != 0)
    assert float(state["trainer/learning_rate"]) < 0.02
