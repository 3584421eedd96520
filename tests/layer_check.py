"""Helpers for the layer tests: a network's output and parameter gradients, compiled.

:func:`forward_and_grads` compiles ``out`` and the gradients of
``sum(out * r)`` with respect to every parameter, in float64, under the
given mode, so a test can compare both with a reference written in numpy
(and torch's autograd for the gradients).
"""

import numpy as np
import pytensor
import pytest

from trainkit.backend import precision, prepare, quiet

MODES = ["JAX", pytest.param("NUMBA", marks=pytest.mark.numba)]


@pytest.fixture(autouse=True)
def float64():
    """Float64 networks (the references are float64), without the suite's float64 alarm."""
    import jax

    x64 = jax.config.jax_enable_x64  # float64 training turns JAX's 64-bit mode on for good
    with pytensor.config.change_flags(floatX="float64", warn_float64="ignore"):
        yield
    jax.config.update("jax_enable_x64", x64)


def forward_and_grads(net, x, r, mode, lengths=None, training=False):
    """(output, {param name: gradient of sum(output * r)}) of ``net`` on ``x``."""
    with pytensor.config.change_flags(floatX=net.dtype):
        graph = net.graph(net.static_time(mode, x))
        if training and graph.training is not None:
            graph = graph.training
        out = graph.outputs[net.output_name]
        loss = (out * r).sum()
        names = list(net.params)
        grads = pytensor.grad(loss, [net.params[n] for n in names])
        inputs = [net.x] + ([net.lengths] if net.lengths is not None else [])
        prepare(mode, net.dtype)
        x64 = net.dtype == "float64"
        with quiet(), precision(mode, x64):
            f = pytensor.function(inputs, [out, *grads], mode=mode)
    args = [x] + ([np.asarray(lengths, "int32")] if net.lengths is not None else [])
    with quiet(), precision(mode, x64):
        values = f(*args)
    return np.asarray(values[0]), dict(zip(names, map(np.asarray, values[1:]), strict=True))


def torch_grads(forward, params, r):
    """Gradients of ``sum(forward(params) * r)`` by torch's autograd (float64)."""
    torch = pytest.importorskip("torch")
    tensors = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()
    }
    out = forward(tensors)
    (out * torch.tensor(r, dtype=torch.float64)).sum().backward()
    return out.detach().numpy(), {k: t.grad.numpy() for k, t in tensors.items()}


def values(net):
    """Every parameter's current value, by name."""
    return {name: p.get_value() for name, p in net.params.items()}


def randomise(net, rng, scale=0.5):
    """Give every parameter random values (so zeros or ones hide nothing)."""
    for p in net.params.values():
        v = p.get_value()
        p.set_value(rng.normal(0.0, scale, v.shape).astype(v.dtype))


def assert_close(actual, expected, tol=1e-10):
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)
