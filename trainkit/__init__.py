"""trainkit: declarative regularizers, optimizers and training loops for PyTensor."""

__version__ = "0.1.0"
