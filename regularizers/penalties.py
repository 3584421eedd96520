r"""Loss penalties on weights, hidden activity and recurrent state sequences.

Each penalty follows theanets' normalisation: with :math:`\Omega` the matched
tensors, take each tensor's mean, then the mean over :math:`\Omega`. The
caller adds ``weight * loss(graph)`` to the training loss.
"""

import pytensor.tensor as pt

from .base import Regularizer, mean_of
from .registry import register

__all__ = ["WeightL2", "WeightL1", "HiddenL2", "HiddenL1", "RecurrentState", "RecurrentNorm"]


class _ParameterPenalty(Regularizer):
    kind = "parameter"
    default_description = "no parameter has more than one dimension"

    def default_targets(self, graph):
        return [name for name, p in graph.params.items() if p.ndim > 1]

    def loss(self, graph):
        return mean_of([self.penalty(graph.params[n]) for n in self.targets(graph)])


class _OutputPenalty(Regularizer):
    kind = "output"
    default_description = "no output is marked hidden"

    def default_targets(self, graph):
        return list(graph.hidden)

    def loss(self, graph):
        return mean_of([self.penalty(graph.outputs[n], graph.mask(n)) for n in self.targets(graph)])


def masked_mean(values, mask):
    """Mean of ``values`` over the steps where ``mask`` (batch, time) is 1, all trailing axes.

    0 when no step is real.
    """
    if mask is None:
        return pt.mean(values)
    mask = pt.cast(mask, values.dtype)
    weights = mask if values.ndim == 2 else pt.shape_padright(mask, values.ndim - 2)
    count = pt.sum(mask)
    if values.ndim > 2:
        count = count * pt.cast(pt.prod(values.shape[2:]), values.dtype)
    return pt.sum(weights * values) / pt.maximum(count, pt.ones_like(count))


@register("weight_l2", "weight_decay")
class WeightL2(_ParameterPenalty):
    r"""Squared-weight penalty (L2 weight decay).

    .. math:: \mathcal{L} = \frac{1}{|\Omega|} \sum_{W \in \Omega} \operatorname{mean}(W^2)

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty in the training loss.
    pattern : str or list of str, optional
        Parameters to penalise; default every parameter with more than one
        dimension (weights, not biases).

    Notes
    -----
    The mean (not the sum, and no factor 1/2) follows theanets' code. For the
    decay that AdamW applies outside the loss, use ``algo='adamw'``.

    References
    ----------
    Krogh & Hertz (1992), "A simple weight decay can improve generalization".

    Examples
    --------
    >>> import numpy as np, pytensor, regularizers
    >>> w = pytensor.shared(np.array([[1., -2.], [3., 0.]], "float32"), name="hid1.w")
    >>> g = regularizers.Graph({"out:out": w.sum()}, {"hid1.w": w})
    >>> float(WeightL2(weight=0.1).loss(g).eval())
    3.5
    """

    def __init__(self, weight, pattern=None):
        super().__init__(weight, pattern)

    def penalty(self, tensor):
        return pt.mean(pt.sqr(tensor))


@register("weight_l1", "weight_sparsity")
class WeightL1(_ParameterPenalty):
    r"""Absolute-weight penalty (L1, encourages sparse weights).

    .. math:: \mathcal{L} = \frac{1}{|\Omega|} \sum_{W \in \Omega} \operatorname{mean}(|W|)

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty in the training loss.
    pattern : str or list of str, optional
        Parameters to penalise; default every parameter with more than one
        dimension.

    References
    ----------
    Tibshirani (1996), "Regression shrinkage and selection via the lasso".

    Examples
    --------
    >>> import numpy as np, pytensor, regularizers
    >>> w = pytensor.shared(np.array([[1., -2.], [3., 0.]], "float32"), name="hid1.w")
    >>> g = regularizers.Graph({"out:out": w.sum()}, {"hid1.w": w})
    >>> float(WeightL1(weight=0.1).loss(g).eval())
    1.5
    """

    def __init__(self, weight, pattern=None):
        super().__init__(weight, pattern)

    def penalty(self, tensor):
        return pt.mean(pt.abs(tensor))


@register("hidden_l2")
class HiddenL2(_OutputPenalty):
    r"""Squared hidden-activity penalty.

    .. math:: \mathcal{L} = \frac{1}{|\Omega|} \sum_{Z \in \Omega} \operatorname{mean}(Z^2)

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty in the training loss.
    pattern : str or list of str, optional
        Outputs to penalise; default the graph's hidden outputs.

    References
    ----------
    Merity, McCann & Socher (2017), "Revisiting activation regularization for
    language RNNs" (activation regularization).

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt, regularizers
    >>> z = pt.as_tensor(np.array([[1., -2.], [3., 0.]], "float32"))
    >>> g = regularizers.Graph({"hid1:out": z}, {}, hidden=["hid1:out"])
    >>> float(HiddenL2(weight=0.1).loss(g).eval())
    3.5
    """

    def __init__(self, weight, pattern=None):
        super().__init__(weight, pattern)

    def penalty(self, tensor, mask=None):
        return masked_mean(pt.sqr(tensor), mask)


@register("hidden_l1", "hidden_sparsity")
class HiddenL1(_OutputPenalty):
    r"""Absolute hidden-activity penalty (sparse activations).

    .. math:: \mathcal{L} = \frac{1}{|\Omega|} \sum_{Z \in \Omega} \operatorname{mean}(|Z|)

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty in the training loss.
    pattern : str or list of str, optional
        Outputs to penalise; default the graph's hidden outputs.

    References
    ----------
    Lee, Battle, Raina & Ng (2007), "Efficient sparse coding algorithms".

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt, regularizers
    >>> z = pt.as_tensor(np.array([[1., -2.], [3., 0.]], "float32"))
    >>> g = regularizers.Graph({"hid1:out": z}, {}, hidden=["hid1:out"])
    >>> float(HiddenL1(weight=0.1).loss(g).eval())
    1.5
    """

    def __init__(self, weight, pattern=None):
        super().__init__(weight, pattern)

    def penalty(self, tensor, mask=None):
        return masked_mean(pt.abs(tensor), mask)


class _RecurrentPenalty(_OutputPenalty):
    default_description = "no output is marked recurrent"

    def default_targets(self, graph):
        return list(graph.recurrent)

    def targets(self, graph):
        names = super().targets(graph)
        for name in names:
            var = graph.outputs[name]
            if var.ndim != 3:
                raise ValueError(
                    f"{self.label or self.name}: output {name!r} has {var.ndim} dimension(s); "
                    f"recurrent penalties need (batch, time, units) tensors"
                )
            steps = var.type.shape[1]
            if steps is not None and steps < 2:
                raise ValueError(
                    f"{self.label or self.name}: output {name!r} has {steps} time step; "
                    f"recurrent penalties compare consecutive steps and need at least 2"
                )
        return names


def _mean_or_zero(z, mask=None):
    """Mean of changes ``z`` (batch, time - 1, ...), or 0 when there are none.

    With a ``(batch, time)`` mask, only changes between two real steps count.
    """
    if mask is None:
        count = pt.cast(pt.maximum(z.size, 1), z.dtype)
        return pt.sum(z) / count
    return masked_mean(z, mask[:, 1:] * mask[:, :-1])


def _norm(z):
    """L2 norm over the last axis whose gradient is 0, not NaN, at zero."""
    sq = pt.sum(pt.sqr(z), axis=-1)
    positive = pt.gt(sq, 0)
    return pt.switch(positive, pt.sqrt(pt.switch(positive, sq, 1)), 0)


@register("recurrent_state")
class RecurrentState(_RecurrentPenalty):
    r"""Penalty on changes of a recurrent state between time steps.

    .. math::
        \mathcal{L} = \frac{1}{|\Omega|} \sum_{Z \in \Omega}
        \operatorname{mean}_{b,\, t \ge 1,\, j} (Z_{b,t,j} - Z_{b,t-1,j})^2

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty in the training loss.
    pattern : str or list of str, optional
        Outputs of shape ``(batch, time, units)``; default the graph's
        recurrent outputs.

    References
    ----------
    Merity, McCann & Socher (2017), "Revisiting activation regularization for
    language RNNs" (temporal activation regularization, there with a sum over
    units; here a mean, as theanets).

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt, regularizers
    >>> z = pt.as_tensor(np.array([[[0., 0.], [1., 2.], [1., 0.]]], "float32"))
    >>> g = regularizers.Graph({"rnn:out": z}, {}, recurrent=["rnn:out"])
    >>> float(RecurrentState(weight=0.1).loss(g).eval())  # (1 + 4 + 0 + 4) / 4
    2.25
    """

    def __init__(self, weight, pattern=None):
        super().__init__(weight, pattern)

    def penalty(self, tensor, mask=None):
        return _mean_or_zero(pt.sqr(tensor[:, 1:] - tensor[:, :-1]), mask)


@register("recurrent_norm")
class RecurrentNorm(_RecurrentPenalty):
    r"""Norm-stabilizer: penalises changes of the state's L2 norm over time.

    .. math::
        \mathcal{L} = \frac{1}{|\Omega|} \sum_{Z \in \Omega}
        \operatorname{mean}_{b,\, t \ge 1}
        \left(\lVert Z_{b,t} \rVert_2 - \lVert Z_{b,t-1} \rVert_2\right)^2

    with the norm over units. With ``squared=True`` the squared norms are
    compared instead, :math:`(\lVert Z_{b,t}\rVert_2^2 - \lVert Z_{b,t-1}\rVert_2^2)^2`,
    the formula printed in theanets' documentation. (theanets' code computed
    neither: it left out the outer square.)

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty (Krueger & Memisevic's beta).
    pattern : str or list of str, optional
        Outputs of shape ``(batch, time, units)``; default the graph's
        recurrent outputs.
    squared : bool
        Compare squared norms instead of norms.

    Notes
    -----
    The paper sums over time steps and averages over the batch; the mean over
    time here makes the weight independent of sequence length. The norm's
    gradient is taken as 0 where a state is exactly zero (not NaN).

    References
    ----------
    Krueger & Memisevic (2016), "Regularizing RNNs by stabilizing
    activations", ICLR.

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt, regularizers
    >>> z = pt.as_tensor(np.array([[[3., 4.], [0., 1.], [0., 0.]]], "float32"))
    >>> g = regularizers.Graph({"rnn:out": z}, {}, recurrent=["rnn:out"])
    >>> float(RecurrentNorm(weight=0.1).loss(g).eval())  # ((1 - 5)^2 + (0 - 1)^2) / 2
    8.5
    >>> float(RecurrentNorm(weight=0.1, squared=True).loss(g).eval())  # ((1 - 25)^2 + 1) / 2
    288.5
    """

    def __init__(self, weight, pattern=None, squared=False):
        super().__init__(weight, pattern)
        if not isinstance(squared, bool):
            raise TypeError(
                f"{self.label or self.name}: squared must be True or False, got {squared!r}"
            )
        self.squared = squared

    def penalty(self, tensor, mask=None):
        norms = pt.sum(pt.sqr(tensor), axis=-1) if self.squared else _norm(tensor)
        return _mean_or_zero(pt.sqr(norms[:, 1:] - norms[:, :-1]), mask)
