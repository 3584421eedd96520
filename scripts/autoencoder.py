#!/usr/bin/env python
"""Denoising autoencoder: 32-dimensional signals that live on a 4-dimensional manifold.

    python scripts/autoencoder.py [--max-updates N]

Each signal is a sum of four sinusoids with random amplitudes. The network
squeezes them through 4 units, trained with input noise (denoising) and a
sparsity penalty on the code, and prints the held-out R² of reconstructions.
"""

import argparse

import numpy as np

import trainkit


def make_data(n, rng):
    t = np.linspace(0, 1, 32)
    basis = np.stack([np.sin(2 * np.pi * k * t + k) for k in (1, 2, 3, 5)])
    return (rng.normal(size=(n, 4)) @ basis / 2).astype("float32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=2000)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    train, valid = make_data(2000, rng), make_data(500, rng)
    net = trainkit.Autoencoder([32, (16, "tanh"), (4, "linear"), (16, "tanh"), 32])
    net.train(
        [train],
        [valid],
        algo="adam",
        learning_rate=3e-3,
        batch_size=64,
        max_updates=args.max_updates,
        validate_every=250,
        input_noise=0.1,
        hidden_l1=dict(weight=1e-4, pattern="hid2:out"),
        progress=False,
    )
    print(f"held-out reconstruction R² {net.score(valid):.3f}")


if __name__ == "__main__":
    main()
