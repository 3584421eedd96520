#!/usr/bin/env python
"""Data-parallel scaling: the 784-512-512-10 MLP on 2 processes × 1 thread vs
1 process × 1 thread.

    python benchmarks/data_parallel.py [--updates 60] [--batch-size 256] [--ranks 2] [--mode NUMBA]

Both runs train the same classifier (generated data, float32, Adam,
``weight_l2=1e-4``, ``--mode``: PyTensor's Numba backend by default, the one
the figures in docs/distributed.md were measured on; ``--mode JAX`` for
trainkit's default backend) on the same global
batches of ``--batch-size`` examples; the data-parallel run gives each
process half of every batch and all-reduces the gradients (one flat buffer
of 669,706 float32 values, 2.7 MB, per update). Rates skip the first 10
updates (compiling, warm-up) and time the updates between two callbacks, so
validation is not included. Each process runs with one thread
(``OMP_NUM_THREADS=1``, ``threads=1``), so on a machine with at least as many
free cores as processes the ideal speed-up is the number of processes.

The script runs the one-process case itself, then starts
``mpiexec -n RANKS`` on itself (``--worker``) and prints a table. It sets
``OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`` for Open MPI,
which otherwise refuses to run as root (in a container, say).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SKIP = 10


def timed_mpi():
    """mpi4py's communicator, counting the seconds spent in all-reduces (waits included)."""
    from trainkit.distributed import MPI

    class Timed(MPI):
        seconds = 0.0

        def allreduce_sum(self, array):
            started = time.perf_counter()
            try:
                return super().allreduce_sum(array)
            finally:
                Timed.seconds += time.perf_counter() - started

    return Timed()


def measure(updates, batch_size, parallel, mode="NUMBA"):
    import trainkit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size * 16, 784)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    net = trainkit.Classifier([784, 512, 512, 10], mode=mode)
    marks = {}

    comm = timed_mpi() if parallel else None

    class Mark:
        def on_update(self, trainer):
            if trainer.step == SKIP:
                marks["start"] = time.perf_counter()
                marks["reduce"] = comm.seconds if comm else 0.0
            if trainer.step == SKIP + updates:
                marks["stop"] = time.perf_counter()
                marks["reduce"] = (comm.seconds if comm else 0.0) - marks["reduce"]

    net.train(
        [x, y],
        [x[:batch_size], y[:batch_size]],
        algo="adam",
        learning_rate=1e-3,
        weight_l2=1e-4,
        batch_size=batch_size,
        max_updates=SKIP + updates,
        validate_every=10**6,
        patience=None,
        threads=1,
        progress=False,
        log=False,
        callbacks=[Mark()],
        data_parallel=comm,
    )
    seconds = marks["stop"] - marks["start"]
    return {
        "updates/s": updates / seconds,
        "examples/s": updates * batch_size / seconds,
        "ms in all-reduce per update": 1e3 * marks["reduce"] / updates,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument(
        "--mode", default="NUMBA", help="PyTensor mode: NUMBA (the documented figures) or JAX"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each case, interleaved; the best is shown"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from mpi4py import MPI

        result = measure(args.updates, args.batch_size, parallel=True, mode=args.mode)
        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(result))
        return
    os.environ.update(OMP_NUM_THREADS="1")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )
    worker = [mpiexec, "--oversubscribe", "-n", str(args.ranks), sys.executable, __file__]
    worker += ["--worker", "--updates", str(args.updates), "--batch-size", str(args.batch_size)]
    worker += ["--mode", args.mode]
    singles, parallels = [], []
    for _ in range(args.repeat):  # interleaved, so both cases see the same machine load
        singles.append(measure(args.updates, args.batch_size, parallel=False, mode=args.mode))
        done = subprocess.run(worker, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(done.stdout + done.stderr)
        parallels.append(json.loads(done.stdout.strip().splitlines()[-1]))
    single = max(singles, key=lambda r: r["updates/s"])
    parallel = max(parallels, key=lambda r: r["updates/s"])
    print(
        f"784-512-512-10 MLP, Adam, mode {args.mode}, global batch {args.batch_size}, {args.updates} updates "
        f"timed, best of {args.repeat}; {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"{'':<22}{'updates/s':>12}{'examples/s':>12}{'all-reduce ms/update':>22}")
    for label, r in (
        ("1 process x 1 thread", single),
        (f"{args.ranks} ranks x 1 thread", parallel),
    ):
        print(
            f"{label:<22}{r['updates/s']:>12.1f}{r['examples/s']:>12.0f}"
            f"{r['ms in all-reduce per update']:>22.1f}"
        )
    print(f"speed-up {parallel['updates/s'] / single['updates/s']:.2f}")


if __name__ == "__main__":
    main()
