#!/usr/bin/env python
"""Training steps of a 1-D conv net and of an attention block, trainkit's ops beside PyTorch.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/layers_speed.py [--updates 60] [--modes JAX,NUMBA]

One core for every side (``taskset -c 0``: XLA and PyTorch otherwise use
every core; torch is also told ``set_num_threads(1)``). float32, Adam,
generated data, softmax cross-entropy over 10 classes:

- ``conv1d``: batch 64, 100 steps, 16 channels; conv1d(K=5, 64, 'same') relu,
  conv1d(K=5, 64, 'same') relu, global average pooling, dense 10;
- ``attention``: batch 32, 64 steps, 64 features; 4-head self-attention
  (D = 64) with a residual connection, layer norm, global average pooling,
  dense 10.

The trainkit side trains through the layer forms (``trainkit.Classifier``
with ``conv1d``/``attention``/``add``/``layernorm``/``globalavgpool``
entries, :func:`layers`) with ``net.train`` (Adam, one full batch per
update, no validation until the end), its parameters set to the same
initial values as torch's; the torch side is the same model with
``torch.nn.functional.conv1d`` / ``scaled_dot_product_attention`` and
``torch.optim.Adam``. "compile" is from the call (``net.train``, or building
the torch step) to the end of the first update; steady rates skip two
updates and report the fastest of four blocks of the rest (trainkit's from
the time between ``on_update`` callbacks, so its loop's own work counts). Numbers are one process on a shared machine: compare rows of one run.
``floatX=float32`` is set (as trainkit's float32 networks compile): under
PyTensor's default float64 floatX, JAX runs with 64-bit floats on and the
float32 graph picks up float64 scalars (the conv step ran ~3x slower).
"""

import argparse
import functools
import os
import time

import numpy as np

if "floatX" not in os.environ.get("PYTENSOR_FLAGS", ""):
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f for f in (os.environ.get("PYTENSOR_FLAGS", ""), "floatX=float32") if f
    )

BLOCKS = 4
SHAPES = {"conv1d": (64, 100, 16), "attention": (32, 64, 64)}
CLASSES = 10


def data(model, rng):
    b, t, f = SHAPES[model]
    x = rng.normal(size=(b, t, f)).astype("float32")
    y = rng.integers(0, CLASSES, size=b).astype("int64")
    return x, y


def init(model, rng):
    """Parameter values (numpy), the same for both sides."""
    _, _, f = SHAPES[model]

    def glorot(*shape):
        fan = shape[-2] * (shape[0] if len(shape) == 3 else 1) + shape[-1]
        return (rng.normal(size=shape) * np.sqrt(2.0 / fan)).astype("float32")

    if model == "conv1d":
        return dict(
            w1=glorot(5, f, 64), b1=np.zeros(64, "float32"),
            w2=glorot(5, 64, 64), b2=np.zeros(64, "float32"),
            wd=glorot(64, CLASSES), bd=np.zeros(CLASSES, "float32"),
        )  # fmt: skip
    p = {}
    for k in ("q", "k", "v", "o"):
        p[f"w{k}"], p[f"b{k}"] = glorot(f, f), np.zeros(f, "float32")
    p.update(g=np.ones(f, "float32"), beta=np.zeros(f, "float32"))
    p.update(wd=glorot(f, CLASSES), bd=np.zeros(CLASSES, "float32"))
    return p


def layers(model):
    """The model as trainkit layer forms (the parameter names :func:`init`'s map to)."""
    _, _, f = SHAPES[model]
    if model == "conv1d":
        return [
            dict(size=f),
            dict(form="conv1d", size=64, kernel=5, padding="same", name="c1"),
            dict(form="conv1d", size=64, kernel=5, padding="same", name="c2"),
            dict(form="globalavgpool", name="pool"),
            CLASSES,
        ]
    return [
        dict(size=f),
        dict(form="attention", heads=4, name="att"),
        dict(form="add", inputs=["in", "att"], name="res"),
        dict(form="layernorm", name="ln"),
        dict(form="globalavgpool", name="pool"),
        CLASSES,
    ]


NAMES = {
    "conv1d": dict(w1="c1.w", b1="c1.b", w2="c2.w", b2="c2.b", wd="out.w", bd="out.b"),
    "attention": dict(
        **{f"{p}{k}": f"att.{p}{k}" for k in "qkvo" for p in "wb"},
        g="ln.g",
        beta="ln.b",
        wd="out.w",
        bd="out.b",
    ),
}


class Clock:
    """A callback that notes the time of every update."""

    def __init__(self):
        self.times = []

    def on_update(self, trainer):
        self.times.append(time.perf_counter())


def trainkit_run(model, values, mode, x, y, updates):
    """(compile + first update in s, steady updates/s) of ``net.train`` on the layer forms."""
    import trainkit

    net = trainkit.Classifier(layers(model), seed=0)
    for ours, name in NAMES[model].items():
        net.params[name].set_value(values[ours])
    clock = Clock()
    start = time.perf_counter()
    net.train(
        [x, y],
        algo="adam",
        learning_rate=1e-3,
        batch_size=len(x),
        max_updates=updates + 2,
        validate_every=10**9,
        mode=mode,
        callbacks=[clock],
        progress=False,
        log=False,
    )
    ticks = clock.times
    compiled = ticks[0] - start
    times = np.diff(ticks[1:])  # from the third update on
    return compiled, _steady(list(times))


def torch_step(model, values):
    import torch

    torch.set_num_threads(1)
    F = torch.nn.functional
    p = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in values.items()}
    opt = torch.optim.Adam(p.values(), lr=1e-3)

    def forward(x):
        if model == "conv1d":
            h = x.transpose(1, 2)
            h = F.relu(F.conv1d(h, p["w1"].permute(2, 1, 0), p["b1"], padding="same"))
            h = F.relu(F.conv1d(h, p["w2"].permute(2, 1, 0), p["b2"], padding="same"))
            pooled = h.mean(dim=2)
        else:
            b, t, f = x.shape

            def heads(w, bias):
                return (x @ p[w] + p[bias]).reshape(b, t, 4, f // 4).transpose(1, 2)

            q, k, v = heads("wq", "bq"), heads("wk", "bk"), heads("wv", "bv")
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, f)
            h = F.layer_norm(x + a @ p["wo"] + p["bo"], (f,), p["g"], p["beta"])
            pooled = h.mean(dim=1)
        return pooled @ p["wd"] + p["bd"]

    def step(xs, ys):
        opt.zero_grad()
        loss = F.cross_entropy(forward(torch.from_numpy(xs)), torch.from_numpy(ys))
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _steady(times):
    """Updates/s of the fastest of :data:`BLOCKS` consecutive blocks of step times."""
    block = max(1, len(times) // BLOCKS)
    best = min(sum(times[i : i + block]) for i in range(0, block * BLOCKS, block))
    return block / best


def measure(make, x, y, updates):
    start = time.perf_counter()
    step = make()
    step(x, y)
    compiled = time.perf_counter() - start
    step(x, y)
    times = []
    for _ in range(updates):
        t0 = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t0)
    return compiled, _steady(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--modes", default="JAX", help="comma-separated PyTensor modes")
    parser.add_argument("--models", default="conv1d,attention")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"cores allowed: {affinity}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{'model':<10} {'side':<14} {'compile+1st (s)':>16} {'updates/s':>10}")
    for model in args.models.split(","):
        rng = np.random.default_rng(0)
        x, y = data(model, rng)
        values = init(model, rng)
        for mode in args.modes.split(","):
            compiled, rate = trainkit_run(model, values, mode, x, y, args.updates)
            print(f"{model:<10} {'trainkit ' + mode:<14} {compiled:>16.1f} {rate:>10.1f}")
        if not args.no_torch:
            compiled, rate = measure(
                functools.partial(torch_step, model, values), x, y, args.updates
            )
            print(f"{model:<10} {'PyTorch':<14} {compiled:>16.1f} {rate:>10.1f}")


if __name__ == "__main__":
    main()
