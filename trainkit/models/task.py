"""``Task``: what a trainer needs from a model (graph, loss, inputs, metrics, specs).

:meth:`trainkit.models.network.Network.task` makes one; the
:class:`~trainkit.Trainer` is built from its fields.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

from pytensor.graph.basic import Variable

import regularizers

__all__ = ["Task"]


@dataclass
class Task:
    """What a trainer needs from a model: a graph, a loss and what to feed.

    Attributes
    ----------
    graph : regularizers.Graph
        The clean (prediction-time) graph.
    loss : scalar Variable
        The base loss on ``graph``.
    inputs : list of Variable
        Symbolic variables fed, in order, from each batch's arrays.
    metrics : OrderedDict
        Extra named scalar expressions on ``graph`` (e.g. ``acc``).
    specs : list of ArraySpec or None
        What each array must look like (checked before compiling).
    loss_name : str
        Name under which the base loss is reported (``'mse'``, ``'xent'``).
    givens : dict
        Substitutions made when compiling (an autoencoder's target is its
        clean input).
    batch_weight : scalar Variable or None
        How much a batch counts in validation means (the sum of its sample
        weights; None: its number of examples).
    """

    graph: regularizers.Graph
    loss: Variable
    inputs: list
    metrics: OrderedDict = field(default_factory=OrderedDict)
    specs: list = None
    loss_name: str = "loss"
    givens: dict = field(default_factory=dict)
    batch_weight: Variable = None
