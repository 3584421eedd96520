r"""Norm constraints on parameters and clipping of gradients.

``norm_constraint`` and ``total_norm_constraint`` keep Lasagne's semantics
and defaults; the registered regularizers apply them (and elementwise
clipping) by pattern.
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from .base import Regularizer, as_scalar
from .registry import register

__all__ = [
    "norm_constraint",
    "total_norm_constraint",
    "MaxNorm",
    "MaxGradientNorm",
    "MaxTotalGradientNorm",
    "MaxGradientElem",
]


def norm_constraint(tensor_var, max_norm, norm_axes=None, epsilon=1e-7):
    r"""Rescale ``tensor_var`` so each slice's L2 norm is at most ``max_norm``.

    .. math::
        n = \sqrt{\textstyle\sum_{\text{norm\_axes}} W^2}, \qquad
        W' = W \cdot \frac{\min(n, c)}{\epsilon + n}

    with :math:`c` = ``max_norm``. For a 2-D weight ``(inputs, units)`` the
    norm is over axis 0 (one norm per unit); for 3-D to 5-D tensors, over all
    axes but 0 (one norm per output channel of a convolution filter).

    Parameters
    ----------
    tensor_var : TensorVariable
        The tensor to constrain (usually a parameter's updated value).
    max_norm : float or scalar variable
        The largest norm allowed, :math:`c`.
    norm_axes : sequence of int, optional
        Axes to take the norm over; required for 1-D and 6-D+ tensors.
    epsilon : float
        Added to the norm in the denominator, :math:`\epsilon`.

    Returns
    -------
    TensorVariable
        The constrained tensor, in ``tensor_var``'s dtype.

    Notes
    -----
    Same semantics and defaults as ``lasagne.updates.norm_constraint``, except
    that constants take ``tensor_var``'s dtype (Lasagne used ``floatX``). As in
    Lasagne, slices under the limit are scaled by :math:`n/(\epsilon+n)`,
    a relative change of about ``epsilon / n``.

    References
    ----------
    Srebro & Shraibman (2005), "Rank, trace-norm and max-norm"; Hinton et al.
    (2012), "Improving neural networks by preventing co-adaptation of feature
    detectors".

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt
    >>> w = pt.as_tensor(np.array([[3., 0.], [4., 1.]], "float32"))
    >>> norm_constraint(w, 1.0).eval().round(4)
    array([[0.6, 0. ],
           [0.8, 1. ]], dtype=float32)
    """
    ndim = tensor_var.ndim
    if norm_axes is not None:
        sum_over = tuple(norm_axes)
    elif ndim == 2:
        sum_over = (0,)
    elif ndim in (3, 4, 5):
        sum_over = tuple(range(1, ndim))
    else:
        raise ValueError(
            f"norm_constraint: unsupported tensor dimensionality {ndim}; "
            f"give norm_axes (defaults exist for 2 to 5 dimensions)"
        )
    dtype = tensor_var.dtype
    norms = pt.sqrt(pt.sum(pt.sqr(tensor_var), axis=sum_over, keepdims=True))
    target = pt.clip(norms, as_scalar(0, dtype), as_scalar(max_norm, dtype))
    return tensor_var * (target / (as_scalar(epsilon, dtype) + norms))


def total_norm_constraint(tensor_vars, max_norm, epsilon=1e-7, return_norm=False):
    r"""Rescale tensors together so their joint L2 norm is at most ``max_norm``.

    .. math::
        n = \sqrt{\textstyle\sum_k \sum W_k^2}, \qquad
        W_k' = W_k \cdot \frac{\min(n, c)}{\epsilon + n}

    Parameters
    ----------
    tensor_vars : list of TensorVariable
        Tensors (usually gradients) to rescale together.
    max_norm : float or scalar variable
        The largest joint norm allowed, :math:`c`.
    epsilon : float
        Added to the norm in the denominator.
    return_norm : bool
        Also return the joint norm :math:`n` before rescaling.

    Returns
    -------
    list of TensorVariable, or (list, TensorVariable)
        The rescaled tensors, each in its own dtype (and the norm, in the
        widest of their dtypes).

    Notes
    -----
    Lasagne's ``total_norm_constraint``: under the limit the tensors are still
    scaled, by :math:`n / (n + \epsilon)`. PyTorch's ``clip_grad_norm_`` differs
    there: it multiplies by :math:`\min(1, c / (n + 10^{-6}))`, which leaves
    tensors under the limit unchanged; above it the two agree to
    :math:`O(\epsilon / n)`.

    References
    ----------
    Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent
    neural networks", ICML.

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt
    >>> a = pt.as_tensor(np.array([3.0], "float32"))
    >>> b = pt.as_tensor(np.array([4.0], "float32"))
    >>> [t.eval() for t in total_norm_constraint([a, b], 1.0)]
    [array([0.6], dtype=float32), array([0.8], dtype=float32)]
    """
    tensor_vars = list(tensor_vars)
    if not tensor_vars:
        raise ValueError("total_norm_constraint: tensor_vars is empty")
    dtype = np.result_type(*[t.dtype for t in tensor_vars]).name
    squares = [pt.cast(pt.sum(pt.sqr(t)), dtype) for t in tensor_vars]
    total = squares[0]
    for square in squares[1:]:
        total = total + square
    norm = pt.sqrt(total)
    target = pt.clip(norm, as_scalar(0, dtype), as_scalar(max_norm, dtype))
    multiplier = target / (as_scalar(epsilon, dtype) + norm)
    scaled = [t * pt.cast(multiplier, t.dtype) for t in tensor_vars]
    return (scaled, norm) if return_norm else scaled


@register("max_norm")
class MaxNorm(Regularizer):
    r"""Keep each unit's incoming weight norm at most ``weight`` after every update.

    After the optimizer's update :math:`W \leftarrow W'`, the new value is
    replaced by ``norm_constraint(W', weight, norm_axes)``:
    :math:`W' \cdot \min(n, c) / (\epsilon + n)` with :math:`n` the L2 norm
    per unit (axis 0 of a 2-D ``(inputs, units)`` weight).

    Parameters
    ----------
    weight : float or scalar variable
        The largest norm allowed, :math:`c > 0`.
    pattern : str or list of str, optional
        Parameters to constrain; default every parameter with more than one
        dimension.
    norm_axes : sequence of int, optional
        Axes of the norm; default as ``norm_constraint``.

    References
    ----------
    Srebro & Shraibman (2005); Srivastava et al. (2014), "Dropout" (max-norm
    with dropout). Keras' ``MaxNorm`` constraint.

    Examples
    --------
    >>> import regularizers
    >>> regularizers.from_kwargs(max_norm=3)
    [max_norm(weight=3.0, pattern=None, norm_axes=None)]
    """

    kind = "parameter"
    weight_range = (0.0, None, False, False)
    default_description = "no parameter has more than one dimension"

    def __init__(self, weight, pattern=None, norm_axes=None):
        super().__init__(weight, pattern)
        self.norm_axes = None if norm_axes is None else tuple(int(a) for a in norm_axes)

    def default_targets(self, graph):
        return [name for name, p in graph.params.items() if p.ndim > 1]

    def targets(self, graph):
        names = super().targets(graph)
        for name in names:
            ndim = graph.params[name].ndim
            if self.norm_axes is None and ndim not in (2, 3, 4, 5):
                raise ValueError(
                    f"{self.label or self.name}: parameter {name!r} has {ndim} dimension(s); "
                    f"give norm_axes or a pattern that selects 2- to 5-d weights"
                )
        return names

    def modify_updates(self, graph, updates):
        updates = OrderedDict(updates)
        for name in self.targets(graph):
            param = graph.params[name]
            new = updates.get(param, param)
            updates[param] = norm_constraint(new, self.weight, self.norm_axes)
        return updates


class _GradientClip(Regularizer):
    kind = "parameter"
    weight_range = (0.0, None, False, False)
    default_description = "there are no parameters"

    def __init__(self, weight, pattern=None):
        super().__init__(weight, pattern)

    def default_targets(self, graph):
        return list(graph.params)


@register("max_gradient_norm")
class MaxGradientNorm(_GradientClip):
    r"""Rescale each parameter's gradient to an L2 norm of at most ``weight``.

    .. math::
        g' = g \cdot \min\left(1, \frac{c}{\lVert g \rVert_2}\right)

    one norm per parameter, as downhill's ``max_gradient_norm``.

    Parameters
    ----------
    weight : float or scalar variable
        The largest gradient norm, :math:`c > 0`.
    pattern : str or list of str, optional
        Parameters whose gradients are clipped; default all.

    References
    ----------
    Mikolov (2012), PhD thesis; Pascanu, Mikolov & Bengio (2013).

    Examples
    --------
    >>> import regularizers
    >>> regularizers.from_kwargs(max_gradient_norm=5)
    [max_gradient_norm(weight=5.0, pattern=None)]
    """

    def modify_gradients(self, graph, grads):
        grads = OrderedDict(grads)
        for name in self.targets(graph):
            g = grads[name]
            limit = as_scalar(self.weight, g.dtype)
            norm = pt.sqrt(pt.sum(pt.sqr(g)))
            grads[name] = g * pt.switch(pt.gt(norm, limit), limit / norm, as_scalar(1, g.dtype))
        return grads


@register("max_total_gradient_norm")
class MaxTotalGradientNorm(_GradientClip):
    r"""Rescale all matched gradients together to a joint norm of at most ``weight``.

    .. math::
        n = \sqrt{\textstyle\sum_k \lVert g_k \rVert_2^2}, \qquad
        g_k' = g_k \cdot \frac{\min(n, c)}{\epsilon + n}

    ``total_norm_constraint`` with :math:`\epsilon = 10^{-7}`, as Lasagne
    (under the limit gradients are scaled by :math:`n / (n + \epsilon)`, where
    PyTorch's ``clip_grad_norm_`` leaves them unchanged).

    Parameters
    ----------
    weight : float or scalar variable
        The largest joint norm, :math:`c > 0`.
    pattern : str or list of str, optional
        Parameters whose gradients are clipped together; default all.

    References
    ----------
    Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent
    neural networks", ICML.

    Examples
    --------
    >>> import regularizers
    >>> regularizers.from_kwargs(max_total_gradient_norm=1)
    [max_total_gradient_norm(weight=1.0, pattern=None)]
    """

    def modify_gradients(self, graph, grads):
        grads = OrderedDict(grads)
        names = self.targets(graph)
        scaled = total_norm_constraint([grads[n] for n in names], self.weight)
        grads.update(zip(names, scaled, strict=True))
        return grads


@register("max_gradient_elem")
class MaxGradientElem(_GradientClip):
    r"""Clip every gradient element to :math:`[-c, c]`.

    .. math:: g' = \operatorname{clip}(g, -c, c)

    Parameters
    ----------
    weight : float or scalar variable
        The largest absolute gradient element, :math:`c > 0`.
    pattern : str or list of str, optional
        Parameters whose gradients are clipped; default all.

    References
    ----------
    Graves (2013), "Generating sequences with recurrent neural networks";
    downhill's ``max_gradient_elem``.

    Examples
    --------
    >>> import regularizers
    >>> regularizers.from_kwargs(max_gradient_elem=0.5)
    [max_gradient_elem(weight=0.5, pattern=None)]
    """

    def modify_gradients(self, graph, grads):
        grads = OrderedDict(grads)
        for name in self.targets(graph):
            g = grads[name]
            limit = as_scalar(self.weight, g.dtype)
            grads[name] = pt.clip(g, -limit, limit)
        return grads
