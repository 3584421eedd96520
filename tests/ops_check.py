"""Compile many symbolic cases into ONE function per mode: outputs and gradients, float64.

A case is a name, its symbolic inputs with numpy values, and its outputs.
Every output ``o`` gets a random projection ``r`` (an input, so no large
constant stops Numba caching the graph); the function returns each output
and the gradient of ``sum(o * r)`` (over that case's outputs) with respect
to every input of the case that is a float. The tests compare these with
numpy and torch.
"""

from contextlib import ExitStack

import numpy as np
import pytensor
import pytensor.tensor as pt

from trainkit import backend

__all__ = ["Case", "run"]


class Case:
    """One check: ``inputs`` ({name: numpy value}) and ``build(**symbols) -> list of outputs``."""

    def __init__(self, name, inputs, build, out_shapes, dynamic=(), graded=None):
        self.name, self.inputs, self.build, self.out_shapes = name, inputs, build, out_shapes
        self.graded = len(out_shapes) if graded is None else graded  # outputs in the cost
        self.dynamic = dynamic  # inputs whose shape is unknown to the graph but for the last axis

    def symbols(self):
        def shape(k, v):
            return (None,) * (v.ndim - 1) + v.shape[-1:] if k in self.dynamic else v.shape

        return {
            k: pt.tensor(f"{self.name}.{k}", dtype=v.dtype, shape=shape(k, v))
            for k, v in self.inputs.items()
        }


def projections(cases, seed=0):
    """The random projection of each case's outputs."""
    rng = np.random.default_rng(seed)
    return {c.name: [rng.normal(size=s) for s in c.out_shapes] for c in cases}


def run(cases, mode, seed=0):
    """{case name: (outputs, {input name: gradient})} for ``cases`` compiled together in ``mode``."""
    proj = projections(cases, seed)
    for case in cases:  # outputs outside the cost get no projection
        proj[case.name] = proj[case.name][: case.graded]
    inputs, values, outputs, layout = [], [], [], []
    with ExitStack() as stack:
        stack.enter_context(pytensor.config.change_flags(warn_float64="ignore"))
        # Numba's performance notes on generated code (a product with a transposed view),
        # hidden as trainkit hides them when it compiles a network
        stack.enter_context(backend.quiet())
        import jax  # composite ops (softmax) compile with config.mode, JAX by default

        stack.enter_context(jax.enable_x64(True))
        for case in cases:
            symbols = case.symbols()
            outs = case.build(**symbols)
            rs = [
                pt.tensor(f"{case.name}.r{i}", dtype="float64", shape=(None,) * o.ndim)
                for i, o in enumerate(outs[: case.graded])
            ]
            pairs = list(zip(outs[: case.graded], rs, strict=True))
            cost = sum((o * r).sum() for o, r in pairs)
            wrt = [k for k, v in case.inputs.items() if v.dtype.kind == "f"]
            grads = pytensor.grad(cost, [symbols[k] for k in wrt], disconnected_inputs="ignore")
            inputs += list(symbols.values()) + rs
            values += list(case.inputs.values()) + proj[case.name]
            outputs += list(outs) + list(grads)
            layout.append((case.name, len(outs), wrt))
        f = pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")
        results = [np.asarray(r) for r in f(*values)]
    got, i = {}, 0
    for name, n_out, wrt in layout:
        got[name] = (
            results[i : i + n_out],
            dict(zip(wrt, results[i + n_out : i + n_out + len(wrt)], strict=True)),
        )
        i += n_out + len(wrt)
    return got, proj
