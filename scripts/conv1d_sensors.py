#!/usr/bin/env python
"""A 1-D convolutional net on sensor sequences: which of three rhythms is it?

    python scripts/conv1d_sensors.py [--max-updates N]

Each example is 64 steps of a 2-channel sensor: a noisy oscillation of one
of three periods (8, 12 or 20 steps) with a random phase. Two blocks of
``conv1d`` (strided, linear) + ``batchnorm`` (relu) + ``maxpool1d``, then the
mean over time, classify the period; the script prints the held-out
accuracy.
"""

import argparse

import numpy as np

import trainkit

PERIODS = (8, 12, 20)


def make_data(n, rng, steps=64):
    labels = rng.integers(len(PERIODS), size=n)
    t = np.arange(steps)[None, :]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    period = np.array(PERIODS)[labels][:, None]
    wave = np.sin(2 * np.pi * t / period + phase)
    x = np.stack([wave, np.cos(2 * np.pi * t / period + phase) ** 2], axis=-1)
    x = x + rng.normal(0, 0.3, size=x.shape)
    return x.astype("float32"), labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=400)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    train, valid = make_data(1500, rng), make_data(500, rng)
    net = trainkit.Classifier(
        [
            2,
            dict(form="conv1d", size=16, kernel=5, activation="linear"),
            dict(form="batchnorm", activation="relu"),
            dict(form="maxpool1d", pool=2),
            dict(form="conv1d", size=16, kernel=5, stride=2, activation="linear"),
            dict(form="batchnorm", activation="relu"),
            dict(form="globalavgpool"),
            len(PERIODS),
        ],
        seed=2,
    )
    net.train(
        list(train),
        list(valid),
        algo="adam",
        learning_rate=3e-3,
        batch_size=50,
        max_updates=args.max_updates,
        validate_every=100,
        progress=False,
    )
    print(f"held-out accuracy {net.score(*valid):.3f}")


if __name__ == "__main__":
    main()
