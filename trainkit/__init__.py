"""trainkit: declarative regularizers, optimizers and training loops for PyTensor.

>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([2, 8, 1])
>>> X = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
>>> train_metrics, valid_metrics = net.train([X, X[:, :1] * 2], algo="adam",
...     learning_rate=0.01, max_updates=20, progress=False, log=False)
>>> sorted(valid_metrics)
['loss', 'mse']
"""

from . import optimizers
from .models import Autoencoder, Classifier, Network, Regressor, load
from .training import Assembly, Trainer, assemble

__version__ = "0.1.0"

__all__ = [
    "Assembly",
    "Autoencoder",
    "Classifier",
    "Network",
    "Regressor",
    "Trainer",
    "assemble",
    "load",
    "optimizers",
]
