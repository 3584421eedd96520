"""Numba dispatch of the fused recurrent ops: one object-mode call of the NumPy kernels.

The kernels are NumPy on whole tiles (SIMD ``tanh``), which Numba cannot
beat without SVML, so the compiled graph hops to object mode once per op call
(about 0.1 ms) instead of JIT-compiling a kernel: nothing to compile cold.
The object-mode block calls the module-level :func:`run` with the op's props
spelt as a string constant, so the compiled graph holds no pointer to a
Python object and PyTensor's Numba cache can still store it.
"""

import numba
from pytensor.link.numba.dispatch.basic import (
    get_numba_type,
    numba_njit,
    register_funcify_default_op_cache_key,
)

from .recurrent import FusedRecurrent, FusedRecurrentGrad

#: bump when the object-mode wrapper changes, to invalidate cached graphs
_VERSION = 2


def spell(op):
    """The op's props as one string: ``form|activation|reverse|present``."""
    present = "".join(str(int(p)) for p in getattr(op, "present", ()))
    return f"{op.form}|{op.activation}|{int(op.reverse)}|{present}"


def run(key, inputs):
    """Run the op spelt ``key`` on ``inputs``; a tuple of its outputs."""
    form, activation, reverse, present = key.split("|")
    if present:
        op = FusedRecurrentGrad(form, activation, reverse == "1", [c == "1" for c in present])
        n_outputs = 3
    else:
        op = FusedRecurrent(form, activation, reverse == "1")
        n_outputs = op.n_outputs
    storage = [[None] for _ in range(n_outputs)]
    op.perform(None, inputs, storage)
    return tuple(s[0] for s in storage)


def _object_mode(op, node):
    ret_sig = numba.types.Tuple([get_numba_type(o.type) for o in node.outputs])
    key = spell(op)

    @numba_njit
    def fused_recurrent(*inputs):
        with numba.objmode(ret=ret_sig):
            ret = run(key, inputs)
        return ret

    return fused_recurrent


@register_funcify_default_op_cache_key(FusedRecurrent)
@register_funcify_default_op_cache_key(FusedRecurrentGrad)
def numba_funcify_fused(op, node, **kwargs):
    return _object_mode(op, node), _VERSION
