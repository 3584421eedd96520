r"""Batch normalisation over the global batch in data-parallel training (torch's SyncBatchNorm).

With :math:`R` processes, process :math:`r` holds rows :math:`x_{ri}` of the
batch normalisation layer's input (real steps only, mask :math:`m`). Its
training graph normalises with the statistics of the *global* batch,

.. math:: N = \sum_{r,i} m_{ri}, \quad \mu = \frac{1}{N}\sum_{r,i} m_{ri} x_{ri}, \quad
          \sigma^2 = \frac{1}{N}\sum_{r,i} m_{ri} x_{ri}^2 - \mu^2,

and its gradient flows through them. Each gradient step is three rounds,
each ending in one all-reduce through the communicator:

1. **statistics**: each process computes :math:`(\sum m, \sum m x, \sum m x^2)`
   of its shard; the sum gives :math:`N, \mu, \sigma^2`, which the running
   statistics take (the mean, and the unbiased :math:`\sigma^2 N/(N-1)`);
2. **gradients with the statistics held**: with :math:`\mu, \sigma^2` as
   inputs, process :math:`r` adds :math:`w_r \partial L_r/\partial\theta` to its
   accumulators (as without batch normalisation) and returns
   :math:`w_r \partial L_r/\partial\mu` and :math:`w_r \partial L_r/\partial\sigma^2`;
   their sums are :math:`G_\mu, G_{\sigma^2}`;
3. **the statistics' share**: since :math:`\partial\mu/\partial x_{ri} = m_{ri}/N` and
   :math:`\partial\sigma^2/\partial x_{ri} = 2 m_{ri}(x_{ri}-\mu)/N` (the term through
   :math:`\mu` vanishes, :math:`\sum m (x-\mu) = 0`), process :math:`r` adds the
   gradient of

   .. math:: s_r = \frac{1}{N}\sum_i m_{ri}\,\bigl(G_\mu x_{ri} + G_{\sigma^2} (x_{ri}-\mu)^2\bigr)

   (:math:`\mu, G` held) to its accumulators.

The update's all-reduce then sums the accumulators as usual, and the update
is the gradient of the global batch's weighted mean loss
:math:`\sum_r w_r L_r / \sum_r w_r`: the same, to rounding, as one process on
the whole batch. One batch normalisation layer is supported (a second
would need the first's global statistics before its own: more rounds), and
no random layer (noise, dropout) may feed it (each round would draw anew).

>>> import numpy as np
>>> global_moments(np.array([[2.0, 2.0], [3.0, 5.0], [5.0, 13.0]]))[1:]
(array([1.5, 2.5]), array([0.25, 0.25]), array([0.5, 0.5]))
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace
from pytensor.graph.traversal import ancestors

from regularizers.errors import InvalidArgument

from ..backend import QuietFirstCall, quiet, resolve
from ..ops.norm import running_update
from .state import is_rng
from .step import finite_flag

__all__ = ["SyncBatchNorm", "check", "global_moments"]


def global_moments(sums):
    """``(N, mean, biased var, unbiased var)`` from all-reduced ``(count, Σx, Σx²)`` rows.

    ``sums`` is ``(3, features)``: the count (repeated), the sums and the
    sums of squares, each over every process's real steps.
    """
    n = float(sums[0][0])
    safe = max(n, 1.0)
    mean = sums[1] / safe
    var = np.maximum(sums[2] / safe - mean * mean, 0.0)
    unbiased = var * n / max(n - 1.0, 1.0)
    return n, mean, var, unbiased


def check(parts, assembly):
    """Refuse, in one line, what the rounds cannot do exactly (before any compiling)."""
    connected = set(ancestors([assembly.loss]))
    if parts["mean"] not in connected or parts["var"] not in connected:
        raise InvalidArgument(
            "data_parallel",
            "batchnorm with several processes and a regularizer that rebuilds the training "
            "graph (noise, dropout) is not supported: each all-reduced round would draw anew; "
            "use one process, or weight/activity penalties only",
        )
    if any(is_rng(v) for v in ancestors([parts["x"]])):
        raise InvalidArgument(
            "data_parallel",
            "a random layer feeds the batchnorm layer, and each all-reduced round would draw "
            "anew; use one process",
        )


class SyncBatchNorm:
    """The three compiled rounds of a data-parallel step with one batchnorm layer.

    Parameters
    ----------
    parts : dict
        The layer's ``batch_parts`` (:meth:`~trainkit.layers.normalization.BatchNorm.build_state`).
    step : CompiledStep
        Its assembly, accumulators, weight sum and communicator are used.
    inputs : list of Variable
        What each batch feeds.
    values : list of Variable
        The values the split step reports per batch (loss, base, penalties, extras).
    weight : scalar Variable
        The batch's weight.
    givens, mode
        As the split step compiles with.
    """

    def __init__(self, parts, step, inputs, values, weight, *, givens, mode):
        a = step.assembly
        mean, var, x, mask = parts["mean"], parts["var"], parts["x"], parts["mask"]
        check(parts, a)
        dtype = mean.dtype
        width = parts["running_mean"].get_value(borrow=True).shape
        self.comm = step.communicator
        self.step = step

        def shared(name, value):
            return pytensor.shared(np.full(width, value, dtype=dtype), name=f"syncbn/{name}")

        self.mean, self.var, self.unbiased = shared("mean", 0), shared("var", 1), shared("unb", 1)
        self.g_mean, self.g_var = shared("g_mean", 0), shared("g_var", 0)
        self.count = pytensor.shared(np.asarray(1, dtype=dtype), name="syncbn/count")
        m = pt.ones_like(x) if mask is None else pt.ones_like(x) * mask
        axes = tuple(range(x.ndim - 1))
        sums = pt.stack(
            [pt.sum(m, axis=axes), pt.sum(m * x, axis=axes), pt.sum(m * x * x, axis=axes)]
        )
        with quiet():
            self._stats = QuietFirstCall(
                pytensor.function(
                    inputs, sums, givens=givens, mode=resolve(mode), on_unused_input="ignore"
                ),
                mode,
            )

        # round 2: the split step's gradient function with the statistics held
        replace = {mean: self.mean, var: self.var}
        loss, *held = clone_replace([a.loss, *values], replace=replace)
        params = a.graph.params
        wrt = [*params.values(), self.mean, self.var]
        grads = pytensor.grad(loss, wrt)
        raw, g_mean, g_var = grads[: len(params)], grads[-2], grads[-1]
        flag = finite_flag(loss, [*raw, g_mean, g_var])
        w = pt.cast(weight, dtype)
        updates = OrderedDict()
        for acc, g in zip(step.accumulators.values(), raw, strict=True):
            updates[acc] = pt.switch(flag, acc + g * pt.cast(w, g.dtype), acc)
        updates[step.weight_sum] = pt.switch(flag, step.weight_sum + w, step.weight_sum)
        for v, new in a.graph.updates.items():
            updates[v] = new
        momentum = self.momentum = parts["momentum"]
        self.running_mean, self.running_var = parts["running_mean"], parts["running_var"]
        for v, stat in ((parts["running_mean"], self.mean), (parts["running_var"], self.unbiased)):
            updates[v] = running_update(v, stat, momentum).astype(v.dtype)
        outputs = [pt.cast(flag, "int8"), *held, w, g_mean * w, g_var * w]
        with quiet():
            self._grad = QuietFirstCall(
                pytensor.function(
                    inputs, outputs, updates=updates, givens=givens, mode=resolve(mode)
                ),
                mode,
            )

        # round 3: the statistics' share of the gradient
        count = pt.cast(self.count, dtype)
        sur = pt.sum(m * (self.g_mean * x + self.g_var * pt.sqr(x - self.mean))) / count
        shares = pytensor.grad(sur, list(params.values()), disconnected_inputs="ignore")
        updates = OrderedDict(
            (acc, acc + g) for acc, g in zip(step.accumulators.values(), shares, strict=True)
        )
        with quiet():
            self._share = QuietFirstCall(
                pytensor.function(
                    inputs,
                    [],
                    updates=updates,
                    givens=givens,
                    mode=resolve(mode),
                    on_unused_input="ignore",
                ),
                mode,
            )
        self.functions = [self._stats.function, self._grad.function, self._share.function]

    def gradients(self, batch):
        """The three rounds on this process's shard: ``(finite, values, weight)``.

        Every process must call it for every batch (it all-reduces twice),
        an empty shard too, which adds nothing.
        """
        empty = not len(batch[0])
        width = self.mean.get_value(borrow=True).shape[0]
        sums = np.zeros((3, width)) if empty else np.asarray(self._stats(*batch), np.float64)
        n, mean, var, unbiased = global_moments(self.comm.allreduce_sum(sums))
        dtype = self.mean.dtype
        for shared_var, value in ((self.mean, mean), (self.var, var), (self.unbiased, unbiased)):
            shared_var.set_value(value.astype(dtype), borrow=True)
        self.count.set_value(np.asarray(max(n, 1.0), dtype=dtype))
        if empty:  # the running statistics move on every process alike
            for v, stat in ((self.running_mean, self.mean), (self.running_var, self.unbiased)):
                old = v.get_value(borrow=True)
                keep, m = (
                    np.asarray(1 - self.momentum, old.dtype),
                    np.asarray(self.momentum, old.dtype),
                )
                v.set_value((keep * old + m * stat.get_value(borrow=True)).astype(old.dtype))
            finite, values, weight = True, None, 0.0
            g = np.zeros(2 * width)
        else:
            with np.errstate(all="ignore"):
                flag, *out = self._grad(*batch)
            *values, weight, g_mean, g_var = out
            finite, weight = bool(flag), float(weight)
            g = np.concatenate([g_mean, g_var]).astype(np.float64)
            if not finite:
                g = np.zeros_like(g)  # the update's all-reduce drops this batch everywhere
            values = np.asarray(values, dtype=np.float64)
        g = self.comm.allreduce_sum(g)
        self.g_mean.set_value(g[:width].astype(dtype), borrow=True)
        self.g_var.set_value(g[width:].astype(dtype), borrow=True)
        if not empty and finite:
            with np.errstate(all="ignore"):
                self._share(*batch)
        return finite, values, weight
