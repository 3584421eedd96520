#!/usr/bin/env python
"""What the non-finite guard costs a bandwidth-bound update.

    OMP_NUM_THREADS=1 python benchmarks/guard_cost.py [--params 10] [--size 1000] [--mode NUMBA]

Adam on ``params`` float32 matrices of ``size x size`` whose gradient is the
parameter itself (``loss = sum(p**2) / 2``), so the step is all optimizer
traffic. Three compiled steps, timed alternately in one process:

- ``unguarded``: the plain updates;
- ``per-element``: every update wrapped in ``switch(all(isfinite(g)) & ..., new, old)``
  (trainkit before this benchmark);
- ``one flag``: trainkit's guard, one scalar ``isfinite(loss + sum(g) + ...)``
  decided from the gradients, then ``switch(flag, new, old)``, which fuses into the
  update's elementwise loop.
"""

import argparse
import os
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=10)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--mode", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    import pytensor
    import pytensor.tensor as pt

    from trainkit import optimizers

    rng = np.random.default_rng(0)
    params = [
        pytensor.shared(rng.normal(size=(args.size, args.size)).astype("float32"), name=f"p{i}")
        for i in range(args.params)
    ]
    loss = sum(pt.sum(p**2) for p in params) / 2
    grads = pytensor.grad(loss, params)
    steps = {}
    with pytensor.config.change_flags(floatX="float32"):
        plain = optimizers.build("adam", grads, params, learning_rate=1e-3)
        steps["unguarded"] = pytensor.function([], loss, updates=plain, mode=args.mode)
        finite = pt.isfinite(loss)
        for g in grads:
            finite = pt.and_(finite, pt.all(pt.isfinite(g)))
        guarded = optimizers.build("adam", grads, params, learning_rate=1e-3)
        steps["per-element"] = pytensor.function(
            [],
            loss,
            updates={v: pt.switch(finite, n, v) for v, n in guarded.items()},
            mode=args.mode,
        )
        total = loss
        for g in grads:
            total = total + pt.sum(g)
        flag = pt.isfinite(total)
        one = optimizers.build("adam", grads, params, learning_rate=1e-3)
        steps["one flag"] = pytensor.function(
            [], loss, updates={v: pt.switch(flag, n, v) for v, n in one.items()}, mode=args.mode
        )
    for f in steps.values():
        f()
    counts = dict.fromkeys(steps, 0)
    spent = dict.fromkeys(steps, 0.0)
    deadline = time.perf_counter() + args.seconds * len(steps)
    while time.perf_counter() < deadline:
        for name, f in steps.items():
            t = time.perf_counter()
            for _ in range(3):
                f()
            spent[name] += time.perf_counter() - t
            counts[name] += 3
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"Adam on {args.params} x {args.size}x{args.size} float32, mode {args.mode or 'default'},"
        f" OMP_NUM_THREADS={threads}"
    )
    base = counts["unguarded"] / spent["unguarded"]
    for name in steps:
        rate = counts[name] / spent[name]
        print(f"  {name:12s} {rate:7.1f} updates/s  ({rate / base:6.1%} of unguarded)")


if __name__ == "__main__":
    main()
