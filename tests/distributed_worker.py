"""One process of a data-parallel test run (started by tests/test_distributed_mpi.py).

    python tests/distributed_worker.py CONFIG.json OUT_DIR

CONFIG says what to train (``options``: trainer keywords; ``parallel``: give
``data_parallel='mpi'``; ``blowup_rows``: rows of x set to 1e30 so their
batches are non-finite; ``sigterm_rank``/``sigterm_step``: that rank sends
itself SIGTERM after that update; ``sequences``: a GRU regressor on padded
sequences with lengths and per-step sample weights instead of the MLP; ``batchnorm``: the MLP
with a batchnorm layer). Each process writes ``rank<r>.npz`` (its
final state variables) and ``rank<r>.json`` (what the run reported).
"""

import json
import os
import signal
import sys

import numpy as np


def data(n=37):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return [x, (np.tanh(x[:, :2]) - x[:, 2:]).astype("float32")]


def sequences(n=37, steps=5):
    """``[x, y, lengths, weights]``: padded sequences (loud padding), per-step weights."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, steps + 1, size=n).astype("int32")
    x = rng.normal(size=(n, steps, 3)).astype("float32")
    y = np.cumsum(x[..., :2], axis=1).astype("float32")
    pad = np.arange(steps)[None, :] >= lengths[:, None]
    x[pad], y[pad] = 4.0, -6.0
    weights = rng.uniform(0.2, 3.0, size=(n, steps)).astype("float32")
    return [x, y, lengths, weights]


def network(config):
    import trainkit

    if config.get("batchnorm") and config.get("sequences"):  # real steps only
        return trainkit.Regressor(
            [
                dict(size=3, lengths=True),
                dict(size=4, form="gru"),
                dict(form="batchnorm", activation="tanh"),
                2,
            ]
        )
    if config.get("batchnorm"):  # one batchnorm layer (tests/test_batchnorm_parallel.py)
        return trainkit.Regressor([3, (5, "tanh"), dict(form="batchnorm", activation="tanh"), 2])
    if config.get("sequences"):
        return trainkit.Regressor([dict(size=3, lengths=True), dict(size=4, form="gru"), 2])
    return trainkit.Regressor([3, (5, "tanh"), 2])


class Record:
    """Keeps the trainer and every yielded pair; sends SIGTERM when told to."""

    def __init__(self, rank, sigterm_rank, sigterm_step):
        self.rank, self.sigterm_rank, self.sigterm_step = rank, sigterm_rank, sigterm_step
        self.trainer = None

    def on_start(self, trainer):
        self.trainer = trainer
        # the state training starts from (after a resume): written as start/<name>
        self.start = {
            f"start/{name}": np.array(var.get_value())
            for name, var in trainer.state_variables.items()
            if not hasattr(var.get_value(), "bit_generator")
        }

    def on_update(self, trainer):
        if self.rank == self.sigterm_rank and trainer.step == self.sigterm_step:
            os.kill(os.getpid(), signal.SIGTERM)


def collectives(out):
    """Every MPI communicator operation, its results written to ``rank<r>.json``."""
    from trainkit.distributed import MPI

    comm = MPI()
    mine = np.arange(5, dtype="float32") * (comm.rank + 1) + 0.1
    summed = comm.allreduce_sum(mine)
    comm.barrier()
    report = {
        "rank": comm.rank,
        "size": comm.size,
        "sum": summed.tolist(),
        "sum_dtype": str(summed.dtype),
        "sum_bits": summed.view("uint32").tolist(),
        "broadcast": comm.broadcast({"from": comm.rank}),
        "broadcast_1": comm.broadcast(comm.rank, root=1),
        "gather": comm.gather(comm.rank * 10),
        "any": [comm.any(comm.rank == 1), comm.any(False)],
        "all": [comm.all(comm.rank == 1), comm.all(True)],
    }
    with open(os.path.join(out, f"rank{comm.rank}.json"), "w") as f:
        json.dump(report, f)


def main(config_path, out):
    from trainkit.training.signals import stop_on_signals

    with open(config_path) as f:
        config = json.load(f)
    if config.get("collectives"):
        return collectives(out)
    rank = 0
    options = dict(config["options"])
    if config.get("parallel"):
        from trainkit.distributed import MPI

        rank = MPI().rank
        options["data_parallel"] = "mpi"
    train = sequences() if config.get("sequences") else data()
    for row in config.get("blowup_rows", []):
        train[1][row] = 1e30  # its squared error overflows float32
    net = network(config)
    record = Record(rank, config.get("sigterm_rank"), config.get("sigterm_step"))
    options["callbacks"] = [record]
    iterator = net.itertrain(train, **options)
    pairs = []
    with stop_on_signals(net.trainer):
        for tm, vm in iterator:
            pairs.append(({k: v for k, v in tm.items() if k != "seconds"}, dict(vm)))
    trainer = record.trainer
    state = {}
    generators = {}
    for name, var in trainer.state_variables.items():
        value = var.get_value()
        if hasattr(value, "bit_generator"):
            generators[name] = value.bit_generator.state
        else:
            state[name] = np.asarray(value)
    if config.get("record_start"):
        state.update(record.start)
    np.savez(os.path.join(out, f"rank{rank}.npz"), **state)
    report = {
        "pid": os.getpid(),
        "pairs": pairs,
        "stop_reason": trainer.stop_reason,
        "interrupted": trainer.interrupted,
        "step": trainer.step,
        "skipped": trainer.skipped,
        "generators": generators,
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(report, f, default=float)


if __name__ == "__main__":
    main(*sys.argv[1:])
