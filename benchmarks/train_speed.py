#!/usr/bin/env python
"""Training speed: time to the first update (cold and warm cache), steady step rate
through ``net.train`` and through the bare compiled PyTensor function.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/train_speed.py \
        [--models mlp,lstm,gru,rnn] [--updates 200] [--modes default,NUMBA] [--no-torch]

Models (generated data, float32):

- ``mlp``: 784-512-512-10 classifier, batch 128, Adam, ``weight_l2=1e-4``;
- ``lstm`` (``gru``, ``rnn``): one 128-unit recurrent layer, batch 64, 50 time
  steps, 32 inputs, 10 outputs per step, MSE, Adam, ``recurrent_norm=0.1``.

Each model runs under every mode of ``--modes`` (``default`` is trainkit's
default, JAX unless ``PYTENSOR_FLAGS`` sets a mode; ``NUMBA`` is PyTensor's Numba
backend) and, when torch is installed, as
the same model in PyTorch (``nn.Linear``/``nn.LSTM``/``nn.GRU``/``nn.RNN``,
``torch.optim.Adam``, the penalty written out); every row is its own process,
so ``taskset`` holds each to the same core. torch's "first update" includes
importing it.

"First update" is measured in a fresh process: building the network, checking
the data, compiling the training and validation functions and making one
update. "Cold" gives that process an empty PyTensor cache directory, "warm"
runs it again on the same directory. Steady rates skip the first updates,
split the rest into four blocks and report the fastest block (the same for
both sides, so the box's other jobs do not decide the comparison); the
updates are timed between callbacks, so validation is not included. The
bare rate is a hand-written loop over the trainer's compiled function: it
gathers each shuffled batch from the arrays, calls the function and reads
its outputs back as NumPy arrays (under JAX a loop that never reads them
times only the asynchronous dispatch: that made the Trainer look 17-28%
slower than it was). The difference is the Trainer's overhead (its batching
machinery, the learning-rate variable, metric accumulation, callbacks).
"ready" is the same loop given its batches gathered beforehand: the
function alone.

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

#: steady rates are the fastest of this many equal blocks of the updates
BLOCKS = 4


def make(model, rng):
    import trainkit

    if model == "mlp":
        x = rng.normal(size=(128 * 20, 784)).astype("float32")
        y = rng.integers(0, 10, size=len(x))
        net = trainkit.Classifier([784, 512, 512, 10])
        return net, [x, y], dict(algo="adam", learning_rate=1e-3, batch_size=128, weight_l2=1e-4)
    if model in ("lstm", "gru", "rnn"):
        x = rng.normal(size=(64 * 10, 50, 32)).astype("float32")
        y = rng.normal(size=(len(x), 50, 10)).astype("float32")
        net = trainkit.Regressor([32, dict(size=128, form=model), 10])
        return net, [x, y], dict(algo="adam", learning_rate=1e-3, batch_size=64, recurrent_norm=0.1)
    raise SystemExit(f"--models: unknown model {model!r}; choose from mlp, lstm, gru, rnn")


def torch_model(model, rng):
    """The same model, data and loss in PyTorch: (step function, batches)."""
    import torch

    torch.manual_seed(0)
    if model == "mlp":
        x = rng.normal(size=(128 * 20, 784)).astype("float32")
        y = rng.integers(0, 10, size=len(x))
        net = torch.nn.Sequential(
            torch.nn.Linear(784, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 10),
        )
        params = list(net.parameters())
        weights = [p for p in params if p.ndim > 1]
        size = 128

        def loss_of(xb, yb):
            penalty = sum((w**2).mean() for w in weights) / len(weights)
            return torch.nn.functional.cross_entropy(net(xb), yb) + 1e-4 * penalty

    else:
        x = rng.normal(size=(64 * 10, 50, 32)).astype("float32")
        y = rng.normal(size=(len(x), 50, 10)).astype("float32")
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[model]
        rnn, lin = cls(32, 128, batch_first=True), torch.nn.Linear(128, 10)
        params = [*rnn.parameters(), *lin.parameters()]
        size = 64

        def loss_of(xb, yb):
            h, _ = rnn(xb)
            norms = h.norm(dim=-1)
            penalty = ((norms[:, 1:] - norms[:, :-1]) ** 2).mean()
            return ((lin(h) - yb) ** 2).mean() + 0.1 * penalty

    opt = torch.optim.Adam(params, lr=1e-3)
    batches = [
        (torch.from_numpy(x[i : i + size]), torch.from_numpy(y[i : i + size]))
        for i in range(0, len(x) - size + 1, size)
    ]

    def step(i):
        opt.zero_grad()
        loss = loss_of(*batches[i % len(batches)])
        loss.backward()
        opt.step()
        return float(loss)

    return step


def torch_first(model):
    started = time.perf_counter()
    import torch  # noqa: F401  (the import is part of a cold start)

    torch_model(model, np.random.default_rng(0))(0)
    return time.perf_counter() - started


def torch_steady(model, updates):
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    step = torch_model(model, np.random.default_rng(0))
    for i in range(10):
        step(i)
    block = max(updates // BLOCKS, 1)
    rates = []
    for k in range(BLOCKS):
        start = time.perf_counter()
        for i in range(k * block, (k + 1) * block):
            step(i)
        rates.append(block / (time.perf_counter() - start))
    return max(rates), max(rates), max(rates)


def peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    block = max(updates // BLOCKS, 1)
    stamps = {}

    class Mark:
        def on_update(self, trainer):
            stamps[trainer.step] = time.perf_counter()

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
    # the fastest of BLOCKS blocks of updates, for each side: the box's other jobs
    # come and go, and a comparison of two single runs measures them too
    through_train = max(
        block / (stamps[skip + (k + 1) * block] - stamps[skip + k * block]) for k in range(BLOCKS)
    )

    # the bare loops: the compiled one-function step called on distinct shuffled
    # batches (not one batch kept in cache), its outputs read back as any loop that
    # looks at the loss must (JAX dispatches asynchronously: a loop that never waits
    # times dispatch only). "bare" gathers each batch from the arrays, as a
    # hand-written loop does; "ready" is given its batches gathered beforehand.
    (function,) = trainer.compiled.functions
    size = kwargs["batch_size"]
    order = np.random.default_rng(1).permutation(len(data[0]))
    starts = range(0, len(order) - size + 1, size)
    arrays = [np.asarray(a, dtype=s.dtype) for a, s in zip(data, trainer.specs, strict=True)]

    def gather(i):
        index = order[starts[i % len(starts)] :][:size]
        return [a.take(index, axis=0) for a in arrays]

    ready = [gather(i) for i in range(len(starts))]

    def rate(batch_of):
        for i in range(skip):
            [np.asarray(out) for out in function(*batch_of(i))]
        rates = []
        for k in range(BLOCKS):
            start = time.perf_counter()
            for i in range(k * block, (k + 1) * block):
                [np.asarray(out) for out in function(*batch_of(i))]
            rates.append(block / (time.perf_counter() - start))
        return max(rates)

    return through_train, rate(gather), rate(lambda i: ready[i % len(ready)])


def child(args):
    if args.mode == "torch":
        if args.child == "first":
            result = torch_first(args.models)
        else:
            result = torch_steady(args.models, args.updates)
    elif args.child == "first":
        result = first_update(args.models, args.mode)
    else:
        result = steady(args.models, args.updates, args.mode)
    print(json.dumps([result, peak_rss_mib()]))


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
    if args.impl:
        command += ["--impl", args.impl]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{model} {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lstm")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument(
        "--modes",
        default="default,NUMBA",
        help="PyTensor modes to compare ('default': trainkit's, JAX unless PYTENSOR_FLAGS sets one)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows")
    parser.add_argument(
        "--impl", default=None, help="recurrent layers' impl (auto, fused, scan); default auto"
    )
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["first", "steady"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.impl:  # every recurrent layer built with this impl
            from trainkit.layers import recurrent

            recurrent._Recurrent.options = dict(recurrent._Recurrent.options, impl=args.impl)
        child(args)
        return

    import pytensor

    from trainkit.backend import resolve

    print(
        f"pytensor {pytensor.__version__}, default mode {resolve(None)}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"{os.cpu_count()} CPUs"
    )
    modes = [None if m == "default" else m for m in args.modes.split(",")]
    try:
        import torch  # noqa: F401

        if not args.no_torch:
            modes.append("torch")
    except ImportError:
        print("torch is not installed: PyTorch rows skipped (pip install torch==2.13.0)")
    print(
        f"{'model':6} {'backend':15} {'first update cold':>18} {'warm':>8} {'net.train upd/s':>16} "
        f"{'bare upd/s':>11} {'overhead':>9} {'ready upd/s':>12} {'peak MiB':>9}"
    )
    for model in args.models.split(","):
        for mode in modes:
            args.mode = mode
            with tempfile.TemporaryDirectory() as cache:
                cold, _ = run_child("first", model, cache, args)
                warm, _ = run_child("first", model, cache, args)
                (through_train, bare, ready), peak = run_child("steady", model, cache, args)
            overhead = 100 * (bare / through_train - 1)
            name = mode or f"{resolve(None)} (default)"
            print(
                f"{model:6} {name:15} {cold:17.1f}s {warm:7.1f}s {through_train:16.1f} "
                f"{bare:11.1f} {overhead:8.1f}% {ready:12.1f} {peak:9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
