"""Optimizers: update rules that turn a loss into an ``OrderedDict`` of updates.

Each algorithm is one short function with Lasagne's signature,
``f(loss_or_grads, params, **hyperparameters)``, registered by name so
:func:`build` can construct it from configuration::

    updates = optimizers.build("adam", loss, params, learning_rate=1e-3)

Modules: :mod:`.registry` (names, build, hyperparameters, describe),
:mod:`.plumbing` (parameter names, gradients, dtype casting, named state),
:mod:`.classic` (SGD and momentum), :mod:`.adaptive` (Adagrad, RMSProp,
Adadelta), :mod:`.adam_family` (Adam, Adamax, AMSGrad), :mod:`.downhill_rules`
(NAG, Rprop, ESGD) and :mod:`.modern` (NAdam, RAdam, AdamW, Lion).
"""

from .adam_family import adam, adamax, amsgrad
from .adaptive import adadelta, adagrad, rmsprop
from .classic import apply_momentum, apply_nesterov_momentum, momentum, nesterov_momentum, sgd
from .downhill_rules import esgd, nag, rprop
from .modern import adamw, lion, nadam, radam
from .registry import build, describe, hyperparameters, names, register, schedulable

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "apply_momentum",
    "apply_nesterov_momentum",
    "build",
    "describe",
    "esgd",
    "hyperparameters",
    "lion",
    "momentum",
    "nadam",
    "nag",
    "names",
    "nesterov_momentum",
    "radam",
    "register",
    "rmsprop",
    "rprop",
    "schedulable",
    "sgd",
]
