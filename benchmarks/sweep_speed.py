#!/usr/bin/env python
"""Sweep wall time: 8 trials on 2 worker processes vs the same 8 one after another.

    python benchmarks/sweep_speed.py [--trials 8] [--workers 2] [--updates 300] [--mode MODE]

The sweep is a 64-256-256-10 classifier on generated data (4096 examples,
batch 64, Adam), validated every 50 updates, with a grid over learning rate
and weight_l2 and no pruning, so both runs train exactly the same 8 configs
to the same number of updates. Each run is ``trainkit sweep`` in a fresh
process with its own journal file; the time includes starting the
process(es), importing, checking the space and compiling every trial.

Each worker runs with ``OMP_NUM_THREADS=1`` (set here), so two workers use
two cores and one worker one: the speed-up says how well trials spread over
cores, not how many threads one trial could use. The machine's core count
is printed; on a busy machine the figures are noisy.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG = """\
[model]
kind = "Classifier"
layers = [64, 256, 256, 10]
seed = 0
{mode}
[data]
train = "train.npz"
x = "x"
y = "y"
valid_fraction = 0.125

[training]
algo = "adam"
batch_size = 64
max_updates = {updates}
validate_every = 50
patience = "none"

[sweep]
pruner = "none"
sampler = "grid"

[sweep.space]
"training.learning_rate" = [1e-3, 3e-3, 1e-2, 3e-2]
"training.weight_l2" = [0.0, 1e-4]
"""


def sweep(folder, name, trials, workers, env):
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "trainkit", "sweep", "sweep.toml", "--trials", str(trials),
         "--workers", str(workers), "--run-dir", f"runs/{name}"],
        cwd=folder, env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    finished = sum(1 for p in (folder / "runs" / name).glob("trial-*/model.npz"))
    return seconds, finished


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--mode", help="PyTensor mode for the trials (default: PyTensor's)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="trainkit-sweep-bench-") as scratch:
        folder = Path(scratch)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4096, 64)).astype("float32")
        y = (x[:, :10].argmax(axis=1)).astype("int64")
        np.savez(folder / "train.npz", x=x, y=y)
        mode = f'mode = "{args.mode}"\n' if args.mode else ""
        (folder / "sweep.toml").write_text(CONFIG.format(updates=args.updates, mode=mode))
        # a throwaway run of every trial fills PyTensor's compile cache (each weight_l2
        # is a constant of its own graph), so neither timed run pays for compiling
        sweep(folder, "warmup", args.trials, args.workers, env)
        one, n_one = sweep(folder, "sequential", args.trials, 1, env)
        many, n_many = sweep(folder, "parallel", args.trials, args.workers, env)
    print(f"cores: {os.cpu_count()}; OMP_NUM_THREADS=1 per worker; mode {args.mode or 'default'}")
    print(f"{args.trials} trials x {args.updates} updates, 64-256-256-10 classifier, batch 64")
    print(f"  1 worker  (one after another): {one:7.1f} s  ({n_one} trials finished)")
    print(
        f"  {args.workers} workers (one journal file):  {many:7.1f} s  ({n_many} trials finished)"
    )
    print(f"  speed-up: {one / many:.2f}x")


if __name__ == "__main__":
    main()
