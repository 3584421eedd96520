#!/usr/bin/env python
"""XOR: the smallest problem a linear model cannot solve.

    python scripts/xor.py [--max-updates N]

A classifier with one hidden tanh layer learns the four XOR cases and prints
its predictions.
"""

import argparse

import numpy as np

import trainkit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=500)
    args = parser.parse_args(argv)

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    labels = np.array([0, 1, 1, 0])
    net = trainkit.Classifier([2, (8, "tanh"), 2], seed=1)
    net.train(
        [x, labels],
        algo="adam",
        learning_rate=0.05,
        batch_size=4,
        max_updates=args.max_updates,
        validate_every=100,
        progress=False,
    )
    for row, label in zip(x, net.predict(x), strict=True):
        print(f"{int(row[0])} xor {int(row[1])} -> {label}")
    print(f"accuracy {net.score(x, labels):.2f}")


if __name__ == "__main__":
    main()
