"""Models built from layer lists: ``Regressor``, ``Classifier``, ``Autoencoder``."""

from . import losses
from .network import Autoencoder, Classifier, Network, Regressor, Task, load

__all__ = ["Autoencoder", "Classifier", "Network", "Regressor", "Task", "load", "losses"]
