"""Models built from layer lists: ``Regressor``, ``Classifier``, ``Autoencoder``."""

from . import losses
from .kinds import Autoencoder, Classifier, Regressor, load
from .network import Network
from .task import Task

__all__ = ["Autoencoder", "Classifier", "Network", "Regressor", "Task", "load", "losses"]
