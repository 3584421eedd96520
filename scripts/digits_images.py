#!/usr/bin/env python
"""A small image classifier: the bundled 8x8 handwritten digits read as images.

    python scripts/digits_images.py [--max-updates N]

The 1,797 UCI digits shipped with trainkit, as ``(8, 8, 1)`` channels-last
images: ``conv2d`` (3x3, 'same') + ``maxpool2d`` + ``flatten`` + a softmax
layer. A quarter is held out; the script prints the held-out accuracy.
"""

import argparse

import numpy as np

import trainkit
from trainkit.cli.files import digits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=600)
    args = parser.parse_args(argv)

    x, labels = digits()
    x = x[..., None]  # (n, 8, 8, 1)
    order = np.random.default_rng(0).permutation(len(x))
    cut = len(x) * 3 // 4
    train, valid = order[:cut], order[cut:]
    net = trainkit.Classifier(
        [
            dict(shape=(8, 8, 1)),
            dict(form="conv2d", size=16, kernel=3, padding="same"),
            dict(form="maxpool2d", pool=2),
            dict(form="flatten"),
            10,
        ],
        seed=0,
    )
    net.train(
        [x[train], labels[train]],
        [x[valid], labels[valid]],
        algo="adam",
        learning_rate=3e-3,
        batch_size=64,
        max_updates=args.max_updates,
        validate_every=100,
        weight_l2=1e-4,
        progress=False,
    )
    print(f"held-out accuracy {net.score(x[valid], labels[valid]):.3f}")


if __name__ == "__main__":
    main()
