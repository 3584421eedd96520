#!/usr/bin/env python
"""Fused recurrent op vs ``pytensor.scan`` vs PyTorch, one LSTM training step.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/recurrent_ops.py [--form lstm] [--updates 30]

The model of ``benchmarks/train_speed.py``'s LSTM row, built by hand (no
``net.train``): float32, batch 64, 50 steps, 32 inputs, 128 units, a linear
readout of 10 per step, MSE + ``0.1 * recurrent_norm`` on the state
sequence, Adam. Each variant runs in a fresh process with an empty PyTensor
cache ("cold": building, compiling and the first update), then a second
process on the same cache ("warm"), then steady updates/s. Torch is skipped
with a message when absent.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

B, T, F, H, N_OUT = 64, 50, 32, 128, 10
BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}


def data(rng):
    return (
        rng.normal(size=(B, T, F)).astype("float32"),
        rng.normal(size=(B, T, N_OUT)).astype("float32"),
    )


def pytensor_step(form, impl, mode):
    import pytensor
    import pytensor.tensor as pt

    from trainkit.ops import fused_rnn
    from trainkit.optimizers import adam

    rng = np.random.default_rng(0)
    G = BLOCKS[form]

    def param(name, *shape, scale=0.1):
        return pytensor.shared((rng.normal(size=shape) * scale).astype("float32"), name=name)

    xh, hh, b = param("xh", F, G * H), param("hh", H, G * H), param("b", G * H)
    w, c = param("w", H, N_OUT), param("c", N_OUT)
    x, y = pt.tensor3("x", dtype="float32"), pt.tensor3("y", dtype="float32")
    # 2-D GEMMs: a 3-D ``x @ xh`` becomes a batched matmul whose gradient is much slower
    projected = (x.reshape((-1, F)) @ xh + b).reshape((x.shape[0], x.shape[1], G * H))
    if impl == "fused":
        out = fused_rnn(form, projected, hh)["out"]
    else:
        import trainkit.recurrent as rec

        layer = {"rnn": rec.RNN, "lstm": rec.LSTM, "gru": rec.GRU}[form]
        fake = layer.__new__(layer)
        fake.params = {"l.hh": hh}
        fake.name, fake.size, fake.activation = "l", H, "tanh"
        h0 = pt.zeros((x.shape[0], H), dtype="float32")
        out = fake.scan(projected.dimshuffle(1, 0, 2), h0)["out"].dimshuffle(1, 0, 2)
    pred = (out.reshape((-1, H)) @ w + c).reshape((x.shape[0], x.shape[1], N_OUT))
    norms = pt.sqrt((out**2).sum(axis=-1))
    loss = ((pred - y) ** 2).mean() + np.float32(0.1) * ((norms[:, 1:] - norms[:, :-1]) ** 2).mean()
    updates = adam(loss, [xh, hh, b, w, c], learning_rate=1e-3)
    return pytensor.function([x, y], loss, updates=updates, mode=mode)


def torch_step(form):
    import torch

    torch.manual_seed(0)
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[form](
        F, H, batch_first=True
    )
    lin = torch.nn.Linear(H, N_OUT)
    opt = torch.optim.Adam([*rnn.parameters(), *lin.parameters()], lr=1e-3)

    def step(x, y):
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        opt.zero_grad()
        out, _ = rnn(x)
        norms = out.norm(dim=-1)
        loss = ((lin(out) - y) ** 2).mean() + 0.1 * ((norms[:, 1:] - norms[:, :-1]) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def child(args):
    started = time.perf_counter()
    if args.impl == "torch":
        step = torch_step(args.form)
    else:
        step = pytensor_step(args.form, args.impl, args.mode)
    x, y = data(np.random.default_rng(1))
    step(x, y)
    first = time.perf_counter() - started
    rate = None
    if args.updates:
        for _ in range(3):
            step(x, y)
        t0 = time.perf_counter()
        for _ in range(args.updates):
            step(x, y)
        rate = args.updates / (time.perf_counter() - t0)
    print(json.dumps(dict(first=first, rate=rate)))


def run(impl, form, mode, updates, cache):
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--impl",
        impl,
        "--form",
        form,
        "--updates",
        str(updates),
    ] + (["--mode", mode] if mode else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        return dict(error=out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--form", default="lstm", choices=sorted(BLOCKS))
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--impls", default="fused,scan,torch")
    p.add_argument("--mode", default=None, help="PyTensor mode (default: Numba)")
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    print(
        f"{args.form}: B={B} T={T} in={F} H={H}, float32, Adam, MSE + recurrent_norm; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"cpus={len(os.sched_getaffinity(0))}, mode={args.mode or 'NUMBA (default)'}"
    )
    for impl in args.impls.split(","):
        if impl == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                print("torch: not installed, skipped")
                continue
        with tempfile.TemporaryDirectory() as cache:
            cold = run(impl, args.form, args.mode, 0, cache)
            warm = run(impl, args.form, args.mode, args.updates, cache)
        if "error" in cold or "error" in warm:
            print(f"{impl:>6}: failed: {cold.get('error') or warm.get('error')}")
            continue
        print(
            f"{impl:>6}: cold first update {cold['first']:6.1f} s, warm {warm['first']:5.1f} s, "
            f"{warm['rate']:6.1f} updates/s"
        )


if __name__ == "__main__":
    main()
