#!/usr/bin/env python
"""Text classification on token ids with lengths: embedding, 1-D convolution, max over time.

    python scripts/text_classifier.py [--max-updates N]

Synthetic "reviews": sequences of 4 to 20 token ids from a vocabulary of 50,
padded to 20 with id 0. Ids 1-5 are positive words, 6-10 negative ones, the
rest neutral; the label says which kind occurs more often. The network
embeds the ids, convolves over time ('same' padding; padded steps are
zeroed first), takes the maximum over the real steps only and classifies;
it prints the held-out accuracy.
"""

import argparse

import numpy as np

import trainkit

VOCAB, LONGEST = 50, 20


def make_data(n, rng):
    lengths = rng.integers(4, LONGEST + 1, size=n)
    x = np.zeros((n, LONGEST), "int32")
    labels = np.zeros(n, "int64")
    for i, length in enumerate(lengths):
        label = rng.integers(2)
        words = rng.integers(11, VOCAB, size=length)
        k = rng.integers(1, 4)
        spots = rng.choice(length, size=min(2 * k, length), replace=False)
        words[spots[:k]] = rng.integers(1, 6, size=k) + (0 if label else 5)
        words[spots[k : k + k - 1]] = rng.integers(1, 6, size=len(spots[k : k + k - 1])) + (
            5 if label else 0
        )
        x[i, :length] = words
        labels[i] = label
    return x, labels, lengths.astype("int32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-updates", type=int, default=600)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    train, valid = make_data(2000, rng), make_data(500, rng)
    net = trainkit.Classifier(
        [
            dict(vocab=VOCAB, lengths=True),
            dict(form="embedding", size=16),
            dict(form="conv1d", size=32, kernel=3, padding="same"),
            dict(form="globalmaxpool"),
            2,
        ],
        seed=1,
    )
    net.train(
        list(train),
        list(valid),
        algo="adam",
        learning_rate=3e-3,
        batch_size=64,
        max_updates=args.max_updates,
        validate_every=100,
        weight_l2=dict(weight=1e-4, pattern="hid1.w"),
        progress=False,
    )
    x, labels, lengths = valid
    print(f"held-out accuracy {net.score(x, labels, lengths=lengths):.3f}")


if __name__ == "__main__":
    main()
