"""Numba dispatch of the fused recurrent ops: one object-mode call of ``perform``.

The kernels are NumPy on whole tiles (SIMD ``tanh``), which Numba cannot
beat without SVML, so the compiled graph hops to object mode once per op call
(about 0.1 ms) instead of JIT-compiling a kernel: nothing to compile cold.
The dispatch is registered with a cache key (the op's props), so PyTensor's
Numba cache still stores the whole compiled graph.
"""

import numba
from pytensor.link.numba.dispatch.basic import (
    get_numba_type,
    numba_njit,
    register_funcify_default_op_cache_key,
)

from .recurrent import FusedRecurrent, FusedRecurrentGrad

#: bump when the object-mode wrapper changes, to invalidate cached graphs
_VERSION = 1


def _object_mode(op, node):
    ret_sig = numba.types.Tuple([get_numba_type(o.type) for o in node.outputs])
    n_outputs = len(node.outputs)

    def py_perform(inputs):
        storage = [[None] for _ in range(n_outputs)]
        op.perform(node, inputs, storage)
        return tuple(s[0] for s in storage)

    @numba_njit
    def fused_recurrent(*inputs):
        with numba.objmode(ret=ret_sig):
            ret = py_perform(inputs)
        return ret

    return fused_recurrent


@register_funcify_default_op_cache_key(FusedRecurrent)
@register_funcify_default_op_cache_key(FusedRecurrentGrad)
def numba_funcify_fused(op, node, **kwargs):
    return _object_mode(op, node), _VERSION
