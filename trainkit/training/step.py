r"""The compiled training step: one function, or gradients then apply.

A :class:`CompiledStep` turns an :class:`~trainkit.training.assembly.Assembly` into
compiled PyTensor functions and runs them on batches:

- **one function** (the default): ``f(batch)`` computes the loss, the
  gradients and every update at once;
- **two halves** (``split_update=True``, implied by ``accumulate > 1`` and by
  data-parallel training): ``f_grad(batch)`` adds the batch's gradients into
  accumulators, then ``f_apply()`` clips them, runs the optimizer and the norm
  constraints, and clears the accumulators. Between the halves, in
  data-parallel training, :meth:`CompiledStep.reduce` sums the accumulators, the
  weight sum and the caller's flags over processes as one flat buffer;
  clipping therefore sees the whole gradient.

**Accumulation.** With ``accumulate = N`` (or more than one process), each
batch :math:`k` adds :math:`w_k g_k` to the accumulator and :math:`w_k` to the
weight sum, where :math:`w_k` is the batch's weight (its number of examples,
or the sum of its sample weights) and :math:`g_k` the gradient of its mean
loss; the update uses :math:`\sum_k w_k g_k / \sum_k w_k`, the gradient of
the mean over all the batches' examples, so N batches of B examples make the
same update as one batch of N·B examples (to rounding; bitwise where the
arithmetic is exact). Penalties on the parameters enter once, since
:math:`\sum_k w_k g_{pen} / \sum_k w_k = g_{pen}`. With one batch and one
process the accumulator holds the gradient itself, so the split step makes
the same update as the one-function step.

**The non-finite guard.** Nothing non-finite reaches the parameters or the
optimizer state: one flag, "the loss and every gradient element are finite",
is decided from the gradients (one fused reduction per gradient), and every
update is ``switch(flag, new, old)``, a scalar test inside the update's own
elementwise loop. ``benchmarks/guard_cost.py`` measures what that costs a
step that is nothing but optimizer traffic (Adam on 10 × 1000×1000): about
30% there (one more read of the gradients, and the switch); on the MLP and
LSTM benchmarks, whose steps are dominated by matrix products, it is within
noise. Neither computing the flag in a first function and the update in a
second (62% there) nor a sum of the gradients (which PyTensor rewrites
through the products that made them) did better. In the split step a
non-finite batch adds nothing to the accumulators. Random generators always
advance.

**Random generators under JAX.** PyTensor's JAX backend draws from a private
copy of each shared generator, held by the compiled function as a JAX key
(the low 64 bits of the generator's PCG64 state), and leaves the shared
variable untouched. :meth:`CompiledStep.sync_generators` writes each copy's key back
into its shared variable as a NumPy generator whose state has those low 64
bits, so a checkpoint holds the stream where it is, and a function compiled
from it (a resumed run) draws the same numbers the uninterrupted one would.
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

from ..backend import QuietFirstCall, prepare, quiet, resolve
from .assembly import penalty_terms, total_loss
from .state import is_rng

__all__ = ["CompiledStep", "finite_flag", "validation_function"]


def finite_flag(loss, gradients):
    """A scalar that is true iff ``loss`` and every element of ``gradients`` are finite."""
    flag = pt.isfinite(loss)
    for g in gradients:
        flag = pt.and_(flag, pt.all(pt.isfinite(g)))
    return flag


def _generator_from_key(key, like):
    """A NumPy generator that PyTensor's JAX backend reads as the JAX key ``key``.

    The backend keys a copied generator with the low 64 bits of its PCG64
    state, low word first; the other state fields are kept from ``like``.

    >>> rng = np.random.default_rng(0)
    >>> state = _generator_from_key([5, 7], rng).bit_generator.state["state"]["state"]
    >>> state == 5 | 7 << 32
    True
    """
    words = [int(w) for w in np.asarray(key, dtype=np.uint32).ravel()]
    state = like.bit_generator.state
    state["state"]["state"] = words[0] | words[1] << 32
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = state
    return generator


def _grad_norm(gradients, dtype):
    total = None
    for g in gradients:
        term = pt.cast(pt.sum(pt.sqr(g)), dtype)
        total = term if total is None else total + term
    return pt.sqrt(total)


class CompiledStep:
    """Compiled training functions and how to run them.

    Parameters
    ----------
    assembly : Assembly
        The assembled training step.
    inputs : list of Variable
        What each batch feeds.
    extra : OrderedDict
        Further named scalars to report per batch (metrics, monitors), on
        the training graph.
    givens : dict
        Substitutions made when compiling.
    mode : str or Mode or None
        The PyTensor mode.
    batch_weight : scalar Variable
        How much a batch counts when batches are accumulated.
    split : bool
        Compile two halves instead of one function.
    monitor_gradients : bool
        Report ``grad_norm``, the norm of the clipped gradient of each update.
    communicator : Communicator, optional
        Sums the accumulators over processes between the halves
        (:meth:`reduce`).
    weighted : bool
        Accumulate batch-weighted gradients (needed when more than one
        batch or process makes an update).
    """

    def __init__(
        self,
        assembly,
        inputs,
        *,
        extra=None,
        givens=None,
        mode=None,
        batch_weight=None,
        split=False,
        monitor_gradients=False,
        communicator=None,
        weighted=False,
        sync=None,
    ):
        a = assembly
        prepare(mode, a.loss.dtype)
        self.assembly = a
        self.split = split
        self.communicator = communicator
        self.weighted = weighted
        extra = OrderedDict(extra or {})
        values = [a.loss, a.base_loss, *a.penalties.values(), *extra.values()]
        self.batch_names = ["loss", "base", *a.penalties, *extra]
        self.monitor_gradients = monitor_gradients
        self.names = self.batch_names + (["grad_norm"] if monitor_gradients else [])
        dtype = a.loss.dtype
        if not split:
            flag = finite_flag(a.loss, a.gradients.values())
            outputs = [flag, *values]
            if monitor_gradients:
                outputs.append(_grad_norm(a.gradients.values(), dtype))
            # one vector out: reading back one array costs a JAX step far less than six
            outputs = [pt.stack([pt.cast(v, dtype) for v in outputs])]
            updates = OrderedDict(
                (var, new if is_rng(var) else pt.switch(flag, new, var))
                for var, new in a.updates.items()
            )
            with quiet():
                self._step = QuietFirstCall(
                    pytensor.function(
                        inputs, outputs, updates=updates, givens=givens, mode=resolve(mode)
                    ),
                    mode,
                )
            return
        if a.spec.algo == "esgd":
            raise ValueError(
                "algo: esgd needs the loss itself (its curvature estimate differentiates the "
                "gradient), so it cannot run on accumulated or all-reduced gradients; use "
                "accumulate=1 and one process, or another algorithm"
            )
        params = a.graph.params
        self.accumulators = OrderedDict(
            (
                name,
                pytensor.shared(
                    np.zeros_like(p.get_value(borrow=True)), name=f"{name}/grad_accumulator"
                ),
            )
            for name, p in params.items()
        )
        self.weight_sum = pytensor.shared(
            np.asarray(0, dtype=dtype), name="trainer/grad_weight_sum"
        )
        raw = a.raw_gradients
        flag = finite_flag(a.loss, raw.values())
        weight = pt.cast(batch_weight, dtype)
        grad_updates = OrderedDict()
        for name, acc in self.accumulators.items():
            g = raw[name] * pt.cast(weight, raw[name].dtype) if weighted else raw[name]
            grad_updates[acc] = pt.switch(flag, acc + g if weighted else g, acc)
        grad_updates[self.weight_sum] = pt.switch(flag, self.weight_sum + weight, self.weight_sum)
        for var, new in a.graph.updates.items():
            grad_updates[var] = new
        #: the weight of the last batch given to :meth:`gradients` (weighted steps)
        self.last_weight = 0.0
        #: batchnorm over the global batch (:mod:`~trainkit.training.sync_batchnorm`), or None
        self.sync = None
        if sync is not None and communicator is not None and communicator.size > 1:
            from .sync_batchnorm import SyncBatchNorm

            self.sync = SyncBatchNorm(
                sync, self, inputs, values, batch_weight, givens=givens, mode=mode
            )
        else:
            with quiet():
                self._grad = QuietFirstCall(
                    pytensor.function(
                        inputs,
                        [pt.cast(flag, "int8"), *values, *([weight] if weighted else [])],
                        updates=grad_updates,
                        givens=givens,
                        mode=resolve(mode),
                    ),
                    mode,
                )
        if weighted:
            mean = OrderedDict(
                (name, acc / pt.cast(self.weight_sum, acc.dtype))
                for name, acc in self.accumulators.items()
            )
        else:
            mean = OrderedDict(self.accumulators)
        # the second half is the assembled one with the accumulated gradients in place
        # of this batch's: the same clipping, the same optimizer state variables
        replace = {raw[name]: mean[name] for name in params}
        own = [var for var in a.updates if var not in a.graph.updates]
        values = clone_replace(
            [a.updates[var] for var in own] + list(a.gradients.values()), replace=replace
        )
        updates = OrderedDict(zip(own, values[: len(own)], strict=True))
        clipped = values[len(own) :]
        apply_flag = finite_flag(pt.constant(0.0, dtype=dtype), clipped)
        guarded = OrderedDict(
            (var, pt.switch(apply_flag, new, var)) for var, new in updates.items()
        )
        for acc in self.accumulators.values():
            guarded[acc] = pt.zeros_like(acc)
        guarded[self.weight_sum] = pt.zeros_like(self.weight_sum)
        outputs = [pt.cast(apply_flag, "int8")]
        if monitor_gradients:
            outputs.append(_grad_norm(clipped, dtype))
        with quiet():
            self._apply = QuietFirstCall(
                pytensor.function([], outputs, updates=guarded, mode=resolve(mode)), mode
            )

    @property
    def functions(self):
        """The compiled PyTensor functions: ``[step]``, or ``[gradients, apply]`` when split."""
        if not self.split:
            return [self._step.function]
        if self.sync is not None:
            return [*self.sync.functions, self._apply.function]
        return [self._grad.function, self._apply.function]

    def sync_generators(self):
        """Write the JAX backend's private generator copies back to their shared variables.

        Nothing changes on other backends, whose compiled functions advance
        the shared generators themselves.
        """
        for function in self.functions:
            for entry, cell in zip(
                function.maker.expanded_inputs, function.input_storage, strict=True
            ):
                var, value = entry.variable, cell.storage[0]
                if is_rng(var) and isinstance(value, dict) and "jax_state" in value:
                    var.set_value(
                        _generator_from_key(value["jax_state"], var.get_value(borrow=True)),
                        borrow=True,
                    )

    # -- one function -------------------------------------------------------------

    def update(self, batch):
        """One-function step: ``(finite, values)``; nothing changes unless finite."""
        with np.errstate(all="ignore"):  # non-finite values are nan_policy's business
            (out,) = self._step(*batch)
        out = np.asarray(out, dtype=np.float64)
        return bool(out[0]), out[1:]

    # -- two halves ---------------------------------------------------------------

    def gradients(self, batch):
        """First half: add the batch's gradients in; ``(finite, batch values)``."""
        if self.sync is not None:
            finite, values, self.last_weight = self.sync.gradients(batch)
            return finite, values
        with np.errstate(all="ignore"):
            finite, *values = self._grad(*batch)
        if self.weighted:
            *values, weight = values
            self.last_weight = float(weight)
        return bool(finite), np.asarray(values, dtype=np.float64)

    def reduce(self, extra=()):
        """Sum the accumulators, the weight sum and ``extra`` over processes.

        One all-reduce of one flat buffer (in the accumulators' dtype) through
        the communicator; every process gets the same bits back. ``extra``
        (the caller's flags and metric sums) comes back summed, as float64.
        Without a communicator of more than one process, nothing moves and
        ``extra`` comes back as given.
        """
        extra = np.asarray(extra, dtype=np.float64).ravel()
        if self.communicator is None or self.communicator.size == 1:
            return extra
        accumulators = list(self.accumulators.values())
        values = [acc.get_value(borrow=True) for acc in accumulators]
        weight = self.weight_sum.get_value(borrow=True)
        dtype = np.result_type(*values, weight)
        flat = np.empty(sum(v.size for v in values) + 1 + extra.size, dtype=dtype)
        start = 0
        for value in values:
            flat[start : start + value.size] = value.ravel()
            start += value.size
        flat[start] = weight
        flat[start + 1 :] = extra
        flat = self.communicator.allreduce_sum(flat)
        start = 0
        for acc, value in zip(accumulators, values, strict=True):
            part = flat[start : start + value.size].reshape(value.shape)
            acc.set_value(part.astype(value.dtype, copy=True), borrow=True)
            start += value.size
        self.weight_sum.set_value(np.asarray(flat[start], dtype=weight.dtype), borrow=True)
        return flat[start + 1 :].astype(np.float64)

    def snapshot(self):
        """A copy of the accumulators and the weight sum, for :meth:`restore`."""
        variables = [*self.accumulators.values(), self.weight_sum]
        return [np.array(v.get_value(borrow=True), copy=True) for v in variables]

    def restore(self, saved):
        """Put back what :meth:`snapshot` copied (drop a batch another process found
        non-finite)."""
        variables = [*self.accumulators.values(), self.weight_sum]
        for var, value in zip(variables, saved, strict=True):
            var.set_value(value, borrow=True)

    @property
    def weight(self):
        """The weight sum of the accumulated batches (all processes' after :meth:`reduce`)."""
        return float(self.weight_sum.get_value(borrow=True))

    def apply(self):
        """Second half: clip, update, clear; ``(finite, extras)``.

        ``extras`` holds ``grad_norm`` when gradients are monitored. In
        data-parallel training, call :meth:`reduce` first.
        """
        if float(self.weight_sum.get_value(borrow=True)) <= 0 and self.weighted:
            self.clear()
            return False, np.zeros(0)
        with np.errstate(all="ignore"):
            finite, *extras = self._apply()
        return bool(finite), np.asarray(extras, dtype=np.float64)

    def clear(self):
        """Empty the accumulators (after a skipped update)."""
        for acc in self.accumulators.values():
            acc.set_value(np.zeros_like(acc.get_value(borrow=True)), borrow=True)
        self.weight_sum.set_value(np.zeros_like(self.weight_sum.get_value(borrow=True)))


def validation_function(graph, base_loss, regs, inputs, extra, *, givens, mode, batch_weight):
    """The clean-graph validation function and its value names.

    It returns the batch's weight, then ``loss`` (the base loss plus the
    weighted penalties on the clean graph), the base loss, and ``extra``.
    """
    clean_total = total_loss(base_loss, penalty_terms(regs, graph))
    prepare(mode, clean_total.dtype)
    names = ["loss", "base", *extra]
    weight = batch_weight
    if weight is None:
        weight = pt.cast(inputs[0].shape[0], clean_total.dtype)
    with quiet():
        function = pytensor.function(
            inputs,
            [pt.cast(weight, clean_total.dtype), clean_total, base_loss, *extra.values()],
            givens=givens,
            mode=resolve(mode),
        )
    return QuietFirstCall(function, mode), names
