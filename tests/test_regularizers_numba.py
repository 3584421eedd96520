"""One regularized graph compiled on PyTensor's default (Numba) backend.

The rest of the suite runs under FAST_COMPILE (Python implementations); this
catches breakage that only the Numba backend shows (random generators,
switch/cast dtypes). The reference is numpy, fed the mask the function drew.
"""

import numpy as np
import pytensor
import pytest
from helpers import feedforward, ff_forward

import regularizers


@pytest.mark.numba
def test_dropout_and_weight_l2_on_numba():
    graph, values = feedforward(sizes=(3, 16, 5, 2))
    regs = regularizers.from_kwargs(dropout={"hid1:out": 0.5}, weight_l2=0.1)
    train = graph
    for reg in regs:
        train = reg.modify_graph(train)
    out = train.outputs["out:out"]
    loss = (out**2).mean() + np.float32(0.1) * regs[1].loss(train)
    f = pytensor.function(
        [train.inputs["x"]],
        [train.outputs["hid1:out"], out, loss],
        updates=train.updates,
        mode="NUMBA",
    )
    X = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    h1, got_out, got_loss = f(X)
    assert got_loss.dtype == np.float32
    clean = ff_forward(values, X)["hid1:out"]
    kept = h1 != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(h1[kept], 2 * clean[kept], rtol=1e-5)
    ref = ff_forward(values, X, hid1=h1.astype("float64"))["out:out"]
    np.testing.assert_allclose(got_out, ref, rtol=1e-5, atol=1e-5)
    l2 = np.mean([np.mean(values[k].astype("float64") ** 2) for k in ("hid1.w", "hid2.w", "out.w")])
    np.testing.assert_allclose(got_loss, np.mean(ref**2) + 0.1 * l2, rtol=1e-5)
    # the generator advances: the next call draws a different mask
    assert not np.array_equal(f(X)[0] != 0, kept)
