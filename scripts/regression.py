#!/usr/bin/env python
"""Regression: a smooth function of three inputs, with weight decay and dropout.

    python scripts/regression.py [--max-updates N]

Fits y = (sin(x0) + x1 * x2, cos(x0 - x2)) from noisy samples and prints the
held-out R².
"""

import argparse

import numpy as np

import trainkit


def make_data(n, rng):
    x = rng.uniform(-2, 2, size=(n, 3)).astype("float32")
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], np.cos(x[:, 0] - x[:, 2])], axis=1)
    return x, (y + rng.normal(scale=0.05, size=y.shape)).astype("float32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=3000)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    train, valid = make_data(2000, rng), make_data(500, rng)
    net = trainkit.Regressor([3, (64, "tanh"), (64, "tanh"), 2])
    net.train(
        train,
        valid,
        algo="adam",
        learning_rate=3e-3,
        batch_size=64,
        max_updates=args.max_updates,
        validate_every=250,
        patience=8,
        weight_l2=1e-5,
        hidden_dropout=0.05,
        lr_schedule="cosine",
        progress=False,
    )
    print(f"held-out R² {net.score(*valid):.3f}")


if __name__ == "__main__":
    main()
