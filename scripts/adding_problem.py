#!/usr/bin/env python
"""The adding problem (Hochreiter & Schmidhuber 1997): a task that needs memory.

    python scripts/adding_problem.py [--steps T] [--max-updates N] [--mode JAX]

Each sequence has T steps of two channels: a random value in [0, 1], and a
marker that is 1 at exactly two steps. The target is the sum of the two
marked values, so the network must remember the first one until the end.
Always predicting 1 gives a mean squared error of 1/6 ≈ 0.167; an LSTM trained
with Adam and the norm-stabilizer (recurrent_norm, Krueger & Memisevic 2016)
gets far below it.
"""

import argparse

import numpy as np

import trainkit


def make_data(n, steps, rng):
    values = rng.uniform(size=(n, steps))
    markers = np.zeros((n, steps))
    for row in range(n):
        first = rng.integers(0, steps // 2)
        second = rng.integers(steps // 2, steps)
        markers[row, [first, second]] = 1
    x = np.stack([values, markers], axis=2).astype("float32")
    y = (values * markers).sum(axis=1, keepdims=True).astype("float32")
    return x, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--max-updates", type=int, default=1500)
    parser.add_argument("--mode", default=None, help="PyTensor mode, e.g. JAX")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    train = make_data(4000, args.steps, rng)
    valid = make_data(500, args.steps, rng)
    net = trainkit.Regressor(
        [2, dict(size=32, form="lstm", return_sequences=False), 1], mode=args.mode
    )
    net.train(
        train,
        valid,
        algo="adam",
        learning_rate=3e-3,
        batch_size=64,
        max_updates=args.max_updates,
        validate_every=100,
        patience=10,
        recurrent_norm=0.1,
        max_gradient_norm=5,
        progress=False,
    )
    mse = np.mean((net.predict(valid[0]) - valid[1]) ** 2)
    print(f"held-out mse {mse:.4f} (predicting 1 always: {1 / 6:.4f})")


if __name__ == "__main__":
    main()
