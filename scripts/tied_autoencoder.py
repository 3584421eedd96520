#!/usr/bin/env python
"""A tied-weight autoencoder on the bundled 8x8 digits (64 pixels through 16 units).

    python scripts/tied_autoencoder.py [--max-updates N]

The decoder is ``dict(form='tied', partner='enc')``: it reuses the
encoder's weight transposed, :math:`x W_{enc}^T + b`, so the model has half
the weights and ``weight_l2`` on ``enc.w`` counts it once. The script
prints the held-out reconstruction R².
"""

import argparse

import numpy as np

import trainkit
from trainkit.cli.files import digits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=1500)
    args = parser.parse_args(argv)

    x, _ = digits()
    x = x.reshape(len(x), 64)
    order = np.random.default_rng(0).permutation(len(x))
    train, valid = x[order[:1400]], x[order[1400:]]
    net = trainkit.Autoencoder(
        [
            64,
            dict(size=16, name="enc", activation="sigmoid"),
            dict(form="tied", partner="enc", activation="linear"),
        ]
    )
    net.train(
        [train],
        [valid],
        algo="adam",
        learning_rate=1e-2,
        batch_size=64,
        max_updates=args.max_updates,
        validate_every=250,
        weight_l2=dict(weight=1e-5, pattern="enc.w"),
        progress=False,
    )
    print(f"parameters: {', '.join(net.params)}")
    print(f"held-out reconstruction R² {net.score(valid):.3f}")


if __name__ == "__main__":
    main()
