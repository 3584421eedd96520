r"""Additive Gaussian noise and inverted dropout, inserted into a built graph.

Both replace matched outputs by perturbed copies (PyTensor graph
replacement), so everything downstream is recomputed from the perturbed
values; this works on any PyTensor graph, recurrent ones included (the
replaced output is a scan's result, not its inner state). Each regularizer
owns one random generator, a shared variable named ``'<name>/rng'`` (or
``'<name>[<pattern>]/rng'`` with an explicit pattern) that the graph's
updates advance, so checkpoints can save it and runs are reproducible.
"""

import zlib

import pytensor.tensor as pt

from .base import Regularizer, as_scalar
from .registry import register

__all__ = [
    "Noise",
    "InputNoise",
    "HiddenNoise",
    "OutputNoise",
    "Dropout",
    "InputDropout",
    "HiddenDropout",
    "OutputDropout",
]


class _Stochastic(Regularizer):
    kind = "output"
    #: whether the pattern must be given (the generic ``noise``/``dropout``)
    requires_pattern = False

    def __init__(self, weight, pattern=None, seed=None):
        super().__init__(weight, pattern)
        label = self.label or self.name
        if pattern is None and self.requires_pattern:
            raise TypeError(
                f"{label}: give a pattern, e.g. {self.name}={{'hid1:out': {self.weight!r}}}, "
                f"or use input_{self.name}, hidden_{self.name} or output_{self.name}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise TypeError(f"{label}: seed must be a non-negative int or None, got {seed!r}")
        self.seed = seed

    @property
    def rng_name(self):
        """Name of this regularizer's random generator (a shared variable)."""
        if self.pattern is None:
            return f"{self.name}/rng"
        return f"{self.name}[{','.join(self.pattern.globs)}]/rng"

    def make_rng(self):
        """A fresh random generator seeded by ``seed`` (default: from ``rng_name``)."""
        seed = self.seed if self.seed is not None else zlib.crc32(self.rng_name.encode())
        rng = pt.random.shared_rng(seed=seed)
        rng.name = self.rng_name
        return rng

    def modify_graph(self, graph):
        """Replace each matched output, in build order, by a perturbed copy."""
        names = self.targets(graph)
        if not isinstance(self.weight, pt.Variable) and self.weight == 0:
            return graph
        rng = self.make_rng()
        state = rng
        for name in names:
            state, perturbed = self.perturb(state, graph.outputs[name])
            graph = graph.replace({name: perturbed}, updates={rng: state})
        return graph


class _Inputs:
    default_description = "no output is a graph input (like 'in:out')"

    def default_targets(self, graph):
        return graph.input_outputs()


class _Hidden:
    default_description = "no output is marked hidden"

    def default_targets(self, graph):
        return list(graph.hidden)


class _Output:
    default_description = "the graph has no outputs"

    def default_targets(self, graph):
        return [graph.output]


class _NoiseBase(_Stochastic):
    """Additive Gaussian noise (see ``Noise``)."""

    def perturb(self, rng, z):
        rng, eps = rng.normal(0.0, 1.0, size=z.shape, dtype=z.dtype)
        return rng, z + as_scalar(self.weight, z.dtype) * eps


class _DropoutBase(_Stochastic):
    """Inverted dropout (see ``Dropout``)."""

    weight_range = (0.0, 1.0, True, False)

    def perturb(self, rng, z):
        rng, u = rng.uniform(0.0, 1.0, size=z.shape, dtype=z.dtype)
        kept = pt.ge(u, as_scalar(self.weight, u.dtype))
        scale = as_scalar(1.0, z.dtype) / (
            as_scalar(1.0, z.dtype) - as_scalar(self.weight, z.dtype)
        )
        return rng, pt.switch(kept, z * scale, as_scalar(0, z.dtype))


NOISE_FORMULA = r"""

    .. math:: \tilde Z = Z + \sigma \epsilon, \quad \epsilon \sim \mathcal{N}(0, 1)

    ``weight`` is :math:`\sigma`; ``seed`` seeds the random generator (default:
    derived from its name). Training graphs only. References: Bishop (1995),
    "Training with noise is equivalent to Tikhonov regularization".
"""

DROPOUT_FORMULA = r"""

    .. math::
        \tilde Z = \frac{M \odot Z}{1 - p}, \quad M \sim \operatorname{Bernoulli}(1 - p)

    ``weight`` is the drop probability :math:`p` in [0, 1); ``seed`` seeds the
    random generator (default: derived from its name). Training graphs only.
    References: Srivastava et al. (2014), "Dropout", JMLR.
"""


@register("noise", pattern_mapping=True)
class Noise(_NoiseBase):
    __doc__ = (
        "Gaussian noise on the outputs a pattern selects (the pattern is required)."
        + NOISE_FORMULA
        + """
    Examples
    --------
    >>> import regularizers
    >>> regularizers.from_kwargs(noise={"hid[12]:out": 0.1})
    [noise(weight=0.1, pattern='hid[12]:out', seed=None)]
    """
    )
    requires_pattern = True


@register("input_noise")
class InputNoise(_Inputs, _NoiseBase):
    __doc__ = (
        "Gaussian noise on the inputs (outputs that are graph inputs, ``in:out``)." + NOISE_FORMULA
    )


@register("hidden_noise")
class HiddenNoise(_Hidden, _NoiseBase):
    __doc__ = "Gaussian noise on the hidden outputs (or those a pattern selects)." + NOISE_FORMULA


@register("output_noise")
class OutputNoise(_Output, _NoiseBase):
    __doc__ = "Gaussian noise on the model's output (the last output)." + NOISE_FORMULA


@register("dropout", pattern_mapping=True)
class Dropout(_DropoutBase):
    __doc__ = (
        "Inverted dropout on the outputs a pattern selects (the pattern is required)."
        + DROPOUT_FORMULA
        + """
    Examples
    --------
    >>> import regularizers
    >>> regularizers.from_kwargs(dropout={"hid1:out": 0.5, "in:out": 0.2})
    [dropout(weight=0.5, pattern='hid1:out', seed=None), dropout(weight=0.2, pattern='in:out', seed=None)]
    """
    )
    requires_pattern = True


@register("input_dropout")
class InputDropout(_Inputs, _DropoutBase):
    __doc__ = (
        "Inverted dropout on the inputs (outputs that are graph inputs, ``in:out``)."
        + DROPOUT_FORMULA
    )


@register("hidden_dropout")
class HiddenDropout(_Hidden, _DropoutBase):
    __doc__ = (
        "Inverted dropout on the hidden outputs (or those a pattern selects)." + DROPOUT_FORMULA
    )


@register("output_dropout")
class OutputDropout(_Output, _DropoutBase):
    __doc__ = "Inverted dropout on the model's output (the last output)." + DROPOUT_FORMULA
