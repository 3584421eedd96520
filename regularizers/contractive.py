r"""The contractive penalty: squared per-example Jacobian of outputs w.r.t. inputs."""

import pytensor.tensor as pt
from pytensor.gradient import jacobian
from pytensor.graph.traversal import ancestors

from .base import Regularizer, mean_of
from .patterns import Pattern
from .registry import register

__all__ = ["Contractive"]


@register("contractive")
class Contractive(Regularizer):
    r"""Penalise how strongly matched outputs respond to the inputs.

    For each matched output :math:`Z` of shape ``(batch, ...)`` and input
    :math:`x` of shape ``(batch, ...)``, the per-example Jacobian of Rifai et
    al. (2011):

    .. math::
        \mathcal{L} = \frac{1}{|\Omega|\,|X|} \sum_{Z \in \Omega} \sum_{x \in X}
        \operatorname{mean}_{b, j, i}
        \left(\frac{\partial Z_{b,j}}{\partial x_{b,i}}\right)^2

    where :math:`j` runs over the elements of one example's output and
    :math:`i` over the elements of one example's input (for sequences, all
    time steps and units). This is the squared Frobenius norm of each
    example's Jacobian, averaged, not theanets' gradient of the batch mean.

    Parameters
    ----------
    weight : float or scalar variable
        Coefficient of the penalty in the training loss.
    pattern : str or list of str, optional
        Outputs to penalise; default the graph's hidden outputs.
    wrt : str or list of str, optional
        Pattern over the graph's *input* names selecting :math:`X`; default
        every real-valued input the matched outputs depend on.

    Notes
    -----
    The Jacobian is computed as the gradient of :math:`\sum_b Z_{b,j}`
    w.r.t. :math:`x`, one row per output element (vectorised), which equals
    the per-example Jacobian when examples do not interact (true of
    feed-forward and recurrent layers, not of batch normalisation). Cost
    grows with the number of output elements per example.

    References
    ----------
    Rifai, Vincent, Muller, Glorot & Bengio (2011), "Contractive
    auto-encoders: explicit invariance during feature extraction", ICML.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt, regularizers
    >>> x = pt.matrix("x")
    >>> w = pytensor.shared(np.array([[1., 2.], [3., 4.]], "float32"), name="hid1.w")
    >>> g = regularizers.Graph({"in:out": x, "hid1:out": x @ w}, {"hid1.w": w},
    ...                        inputs={"x": x}, hidden=["hid1:out"])
    >>> loss = Contractive(weight=0.1).loss(g)    # linear layer: mean(w ** 2)
    >>> float(loss.eval({x: np.ones((3, 2), "float32")}))
    7.5
    """

    kind = "output"
    default_description = "no output is marked hidden"

    def __init__(self, weight, pattern=None, wrt=None):
        super().__init__(weight, pattern)
        self.wrt = None if wrt is None else Pattern(wrt, owner=f"{self.label or self.name} wrt")

    def default_targets(self, graph):
        return list(graph.hidden)

    def inputs_for(self, graph, name):
        """Names of the inputs the penalty differentiates ``name`` against."""
        label = self.label or self.name
        if not graph.inputs:
            raise ValueError(f"{label}: the graph names no inputs to differentiate against")
        depends = set(ancestors([graph.outputs[name]]))
        if self.wrt is not None:
            chosen = self.wrt.select(list(graph.inputs), "input")
            for key in chosen:
                if graph.inputs[key] not in depends:
                    raise ValueError(f"{label}: output {name!r} does not depend on input {key!r}")
            return chosen
        # integer inputs (sequence lengths, labels) have no derivative
        chosen = [
            key
            for key, var in graph.inputs.items()
            if var in depends and var.dtype.startswith("float")
        ]
        if not chosen:
            raise ValueError(
                f"{label}: output {name!r} depends on none of the inputs {', '.join(graph.inputs)}"
            )
        return chosen

    def loss(self, graph):
        terms = []
        for name in self.targets(graph):
            z = graph.outputs[name]
            for key in self.inputs_for(graph, name):
                x = graph.inputs[key]
                rows = pt.sum(z, axis=0).flatten()
                jac = jacobian(rows, x, vectorize=True)
                terms.append(pt.mean(pt.sqr(jac)))
        return mean_of(terms)
