#!/usr/bin/env python
"""Training speed: time to the first update (cold and warm cache), steady step rate
through ``net.train`` and through the bare compiled PyTensor function.

    python benchmarks/train_speed.py [--models mlp,lstm] [--updates 200] [--mode MODE]

Models (generated data, float32):

- ``mlp``: 784-512-512-10 classifier, batch 128, Adam, ``weight_l2=1e-4``;
- ``lstm``: one 128-unit LSTM layer, batch 64, 50 time steps, 10 outputs per
  step, Adam, ``recurrent_norm=0.1``.

"First update" is measured in a fresh process: building the network, checking
the data, compiling the training and validation functions and making one
update. "Cold" gives that process an empty PyTensor cache directory, "warm"
runs it again on the same directory. Steady rates skip the first updates and
time the updates between two callbacks, so validation is not included; the
bare rate calls the trainer's compiled function in a plain loop on batches
of the same data gathered beforehand. The difference is the Trainer's overhead (data batching, the
learning-rate variable, metric accumulation, callbacks).

Run with ``OMP_NUM_THREADS=1`` for steady figures on a busy machine; the
thread count is printed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def make(model, rng):
    import trainkit

    if model == "mlp":
        x = rng.normal(size=(128 * 20, 784)).astype("float32")
        y = rng.integers(0, 10, size=len(x))
        net = trainkit.Classifier([784, 512, 512, 10])
        return net, [x, y], dict(algo="adam", learning_rate=1e-3, batch_size=128, weight_l2=1e-4)
    if model == "lstm":
        x = rng.normal(size=(64 * 10, 50, 32)).astype("float32")
        y = rng.normal(size=(len(x), 50, 10)).astype("float32")
        net = trainkit.Regressor([32, dict(size=128, form="lstm"), 10])
        return net, [x, y], dict(algo="adam", learning_rate=1e-3, batch_size=64, recurrent_norm=0.1)
    raise SystemExit(f"--models: unknown model {model!r}; choose from mlp, lstm")


def first_update(model, mode):
    """Seconds from building the network to the end of the first update."""
    started = time.perf_counter()
    net, data, kwargs = make(model, np.random.default_rng(0))
    marks = {}

    class Mark:
        def on_update(self, trainer):
            marks.setdefault("first", time.perf_counter())

    net.train(
        data,
        data,
        max_updates=1,
        progress=False,
        log=False,
        mode=mode,
        callbacks=[Mark()],
        **kwargs,
    )
    return marks["first"] - started


def steady(model, updates, mode):
    """Updates per second through net.train and through the bare function."""
    net, data, kwargs = make(model, np.random.default_rng(0))
    skip = 10
    marks = {}

    class Mark:
        def on_update(self, trainer):
            if trainer.step == skip:
                marks["start"] = time.perf_counter()
            if trainer.step == skip + updates:
                marks["end"] = time.perf_counter()

    trainer, train, valid = net._trainer(
        data,
        data,
        kwargs.pop("algo"),
        dict(
            max_updates=skip + updates,
            validate_every=10**9,
            progress=False,
            log=False,
            mode=mode,
            callbacks=[Mark()],
            **kwargs,
        ),
    )
    trainer.train(train, valid)
    through_train = updates / (marks["end"] - marks["start"])

    # the bare loop gets the same kind of batches, gathered beforehand: distinct
    # shuffled batches, so the comparison is not flattered by a batch kept in cache
    function = trainer._step._step.function  # the compiled one-function step
    size = kwargs["batch_size"]
    order = np.random.default_rng(1).permutation(len(data[0]))
    batches = [
        [
            np.ascontiguousarray(a[order[i : i + size]], dtype=s.dtype)
            for a, s in zip(data, trainer.specs, strict=True)
        ]
        for i in range(0, len(order) - size + 1, size)
    ]
    for i in range(skip):
        function(*batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(updates):
        function(*batches[i % len(batches)])
    bare = updates / (time.perf_counter() - start)
    return through_train, bare


def child(args):
    if args.child == "first":
        result = first_update(args.models, args.mode)
    else:
        result = steady(args.models, args.updates, args.mode)
    print(json.dumps(result))


def run_child(kind, model, cache, args):
    env = dict(os.environ)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and "compiledir" not in f]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={cache}"])
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--models",
        model,
        "--updates",
        str(args.updates),
    ]
    if args.mode:
        command += ["--mode", args.mode]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{model} {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lstm")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--mode", default=None, help="PyTensor mode (default: PyTensor's)")
    parser.add_argument("--child", choices=["first", "steady"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import pytensor

    print(
        f"pytensor {pytensor.__version__}, mode {args.mode or pytensor.config.mode}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'model':6} {'first update cold':>18} {'warm':>8} {'net.train upd/s':>16} "
        f"{'bare upd/s':>11} {'overhead':>9}"
    )
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as cache:
            cold = run_child("first", model, cache, args)
            warm = run_child("first", model, cache, args)
            through_train, bare = run_child("steady", model, cache, args)
        overhead = 100 * (bare / through_train - 1)
        print(
            f"{model:6} {cold:17.1f}s {warm:7.1f}s {through_train:16.1f} {bare:11.1f} "
            f"{overhead:8.1f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
