#!/usr/bin/env python
"""A Transformer block on the bundled 8x8 digits read as 64 pixel tokens, with and without positions.

    python scripts/digits_transformer.py [--max-updates N] [--mode JAX]

Each of the 1,797 UCI digits becomes a sequence of 64 tokens (one pixel
each, row by row). One Transformer encoder block: a linear projection to
``--width`` features, a learned position embedding (or none), multi-head
self-attention, add + layernorm, a position-wise feed-forward, add +
layernorm, global average pooling and a softmax. Attention and average
pooling ignore order, so without positions the block sees only which
intensities occur, not where; with them it can find strokes. A quarter is
held out; the script prints the held-out accuracy of each variant.
"""

import argparse

import numpy as np

import trainkit
from trainkit.cli.files import digits


def block(width, positions, seed=0):
    """The Classifier: projection, [position], attention, add, layernorm, feed-forward, add, layernorm."""
    first = "pos" if positions else "proj"
    return trainkit.Classifier(
        [
            dict(size=1),
            dict(form="feedforward", size=width, activation="linear", name="proj"),
            *([dict(form="position", max_length=64, name="pos")] if positions else []),
            dict(form="attention", heads=4, name="att"),
            dict(form="add", inputs=[first, "att"], name="res1"),
            dict(form="layernorm", name="ln1"),
            dict(form="feedforward", size=2 * width, name="ff1"),
            dict(form="feedforward", size=width, activation="linear", name="ff2"),
            dict(form="add", inputs=["ln1", "ff2"], name="res2"),
            dict(form="layernorm", name="ln2"),
            dict(form="globalavgpool", name="pool"),
            10,
        ],
        seed=seed,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=1500)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--mode", default=None, help="PyTensor mode, e.g. JAX")
    args = parser.parse_args(argv)

    x, labels = digits()
    x = x.reshape(len(x), 64, 1)  # 64 pixel tokens of one feature
    order = np.random.default_rng(0).permutation(len(x))
    cut = len(x) * 3 // 4
    train, valid = order[:cut], order[cut:]
    for positions in (False, True):
        net = block(args.width, positions)
        net.train(
            [x[train], labels[train]],
            [x[valid], labels[valid]],
            algo="adam",
            learning_rate=3e-3,
            batch_size=64,
            max_updates=args.max_updates,
            validate_every=100,
            mode=args.mode,
            progress=False,
            log=False,
        )
        what = "with positions   " if positions else "without positions"
        print(f"{what}: held-out accuracy {net.score(x[valid], labels[valid]):.3f}")


if __name__ == "__main__":
    main()
