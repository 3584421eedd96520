r"""An exponential moving average of the parameters (the ``ema`` option).

With ``ema = d`` (a decay in (0, 1)) every parameter :math:`p` has an
average :math:`\bar p` that starts at the parameter's value when the run
starts and after each update :math:`t` becomes

.. math::

    \bar p_t = d \, \bar p_{t-1} + (1 - d) \, p_t
             = \bar p_{t-1} + (1 - d) (p_t - \bar p_{t-1}),

computed in the second form, as torch's ``AveragedModel`` with
``get_ema_multi_avg_fn(d)`` does (``torch._foreach_lerp_``) when its
``update_parameters`` is called once before training and after every
optimizer step; Keras' ``use_ema=True, ema_momentum=d`` is the same average
(Keras starts it at the first update's parameters). The average is part of
the compiled update, so it moves once per update (after ``accumulate``
batches, on every process alike in data-parallel runs), not at all on an
update skipped as non-finite, and it lives in shared variables named
``<param>/ema`` that checkpoints save with the rest of the state.

What the average is used for: validation (its loss, metrics and monitors
evaluate the averaged weights), early stopping and the best parameters that
``restore_best`` puts back, and the end of the run: the network's parameters
are the averaged ones when training ends (as Keras overwrites the model's
variables at the end of ``fit``), so ``net.predict``, ``model.npz`` and the
returned network use them. The training metrics are those of the raw
parameters the optimizer updates.

>>> import numpy as np, pytensor, pytensor.tensor as pt, regularizers, trainkit
>>> x, y = pt.matrix("x"), pt.vector("y")
>>> w = pytensor.shared(np.zeros(2, "float32"), name="out.w")
>>> g = regularizers.Graph({"in:out": x, "out:out": x @ w}, {"out.w": w}, inputs={"x": x})
>>> t = trainkit.Trainer(g, pt.mean((x @ w - y) ** 2), [x, y], algo="sgd", learning_rate=0.1,
...                      ema=0.5, max_updates=1, progress=False, log=False)
>>> X = np.eye(2, dtype="float32")
>>> _ = t.train([X, np.array([1.0, -2.0], "float32")])
>>> w.get_value()  # after one update w = [0.1, -0.2]; the average is half-way from 0
array([ 0.05, -0.1 ], dtype=float32)
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.random.type import RandomGeneratorType

__all__ = ["ParameterAverage"]


class ParameterAverage:
    """The averaged parameters of a run and the updates that move them.

    Parameters
    ----------
    params : mapping of str -> SharedVariable
        The parameters, by name.
    decay : float
        :math:`d` in (0, 1).
    """

    def __init__(self, params, decay):
        self.decay = float(decay)
        self.params = OrderedDict(params)
        #: parameter name -> the shared variable holding its average
        self.variables = OrderedDict(
            (
                name,
                pytensor.shared(np.array(p.get_value(borrow=True), copy=True), name=f"{name}/ema"),
            )
            for name, p in self.params.items()
        )

    def add_updates(self, updates):
        """Add the averages' updates to ``updates`` (shared variable -> new value), which
        must hold the parameters' updates; the averages follow the updated parameters."""
        for name, p in self.params.items():
            average = self.variables[name]
            rate = pt.constant(1.0 - self.decay, dtype=average.dtype)
            updates[average] = average + rate * (updates[p] - average)

    def start(self):
        """Start averaging from the parameters' current values (a fresh run)."""
        for name, p in self.params.items():
            self.variables[name].set_value(np.array(p.get_value(borrow=True), copy=True))

    def givens(self):
        """Substitutions that make a graph on the parameters evaluate the averages."""
        return {p: self.variables[name] for name, p in self.params.items()}

    def values(self):
        """``(name, average)`` pairs (what early stopping keeps as the best parameters)."""
        return ((name, var.get_value()) for name, var in self.variables.items())

    def finish(self, trainer):
        """Leave the averages in the parameters at the end of a run, unless
        ``restore_best`` already put back the best (averaged) ones."""
        if trainer.restored_step is not None:
            return
        for name, p in self.params.items():
            p.set_value(np.array(self.variables[name].get_value(), copy=True))


def build(trainer):
    """The run's :class:`ParameterAverage` (its updates added to the assembly's), or None."""
    decay = trainer.options.ema
    if decay is None:
        return None
    average = ParameterAverage(trainer.graph.params, decay)
    average.add_updates(trainer.assembly.updates)
    return average


def running_state(trainer):
    """``{name: shared variable}`` of the graph's running statistics (batch normalisation).

    They are what a training graph's updates advance besides random
    generators; validation reads them as they are (no average).
    """
    training = getattr(trainer.graph, "training", None)
    if training is None:
        return {}
    return {
        v.name: v
        for v in training.updates
        if v.name and not isinstance(v.type, RandomGeneratorType)
    }


def evaluated_params(trainer):
    """``(name, value)`` of what validation evaluates: the parameters (the averages with
    ``ema``), then the running statistics of the same step (batch normalisation)."""
    if trainer.ema is not None:
        params = list(trainer.ema.values())
    else:
        params = [(n, p.get_value()) for n, p in trainer.graph.params.items()]
    state = [(n, np.array(v.get_value(), copy=True)) for n, v in running_state(trainer).items()]
    return params + state
