"""Model files: ``net.save(path)`` and ``trainkit.load(path)``, checked before building.

A model file is a :mod:`trainkit.archive` file whose meta holds
``{"format": "trainkit.model", "version": 1, "class": ..., "config": ...}``
and whose arrays are the parameters by name. :func:`load` refuses a file
before building anything when the parameters its config implies (computed
from the layer sizes, without allocating) do not match the shapes and dtypes
its members declare, so a small file cannot make it allocate a large network;
and it refuses parameters that hold NaN or infinity (a model that could only
predict NaN).

>>> import os, tempfile, numpy as np, trainkit
>>> net = trainkit.Regressor([3, 4, 2])
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "m.npz")
...     net.save(path)
...     again = trainkit.load(path)
>>> dict(param_shapes(net.config()))
{'hid1.w': (3, 4), 'hid1.b': (4,), 'out.w': (4, 2), 'out.b': (2,)}
"""

from collections import OrderedDict

import numpy as np

from regularizers.errors import unknown

from .. import archive
from ..layers import parse_layers

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "check_finite", "load", "param_shapes", "save"]

MODEL_FORMAT = "trainkit.model"
MODEL_VERSION = 1
_CONFIG_KEYS = {"layers", "loss", "hidden_activation", "seed", "dtype"}


def save(net, path, arrays=None, **extra):
    """Write ``net`` to ``path``: arrays plus JSON, no pickles, atomically.

    ``arrays`` (name -> value) replaces the network's parameter values (the
    best models of a run); ``extra`` adds keys to the JSON header.
    """
    meta = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "class": type(net).__name__,
        "config": net.config(),
        **extra,
    }
    given = arrays
    if arrays is None:
        arrays = OrderedDict((name, p.get_value()) for name, p in net.params.items())
    else:
        arrays = OrderedDict((name, arrays[name]) for name in net.params)
    # running statistics (batchnorm): those given (a best model's step), else the network's own
    given = {} if given is None else given
    arrays.update((name, given.get(name, s.get_value())) for name, s in net.state.items())
    archive.save(path, arrays, meta)


def param_shapes(config):
    """``{name: shape}`` of the parameters and state a model config implies, without
    building it.

    The config's layer list is parsed (:func:`trainkit.layers.parse_layers`),
    which works out every shape as Python ints, so a config declaring
    10**9 units costs nothing.

    Raises
    ------
    ValueError
        For a layer list that does not parse.
    """
    layers = config.get("layers")
    if not isinstance(layers, list) or len(layers) < 2 or not isinstance(layers[0], dict):
        raise ValueError("config: layers must be a list of an input entry and layer entries")
    structure = parse_layers(layers, "linear", config.get("hidden_activation"))
    shapes = structure.param_shapes()
    shapes.update(structure.state_shapes())
    return OrderedDict((name, tuple(int(d) for d in shape)) for name, shape in shapes.items())


def _check_meta(meta):
    """The model class and config of a model file's meta (ValueError if malformed)."""
    from .kinds import _CLASSES

    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"not a trainkit model file (format {meta.get('format')!r})")
    if meta.get("version") != MODEL_VERSION:
        raise ValueError(f"unsupported model version {meta.get('version')!r}")
    cls = _CLASSES.get(meta.get("class"))
    if cls is None:
        raise ValueError(unknown("class", meta.get("class"), _CLASSES, kind="model"))
    config = meta.get("config")
    if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
        raise ValueError(
            f"malformed model config (expected keys {', '.join(sorted(_CONFIG_KEYS))})"
        )
    if config["dtype"] not in ("float32", "float64"):
        raise ValueError(f"config: dtype must be 'float32' or 'float64', got {config['dtype']!r}")
    return cls, config


def check_shapes(expected, specs, dtype, prefix=""):
    """Compare the shapes a config implies with the arrays a file declares.

    ``specs`` maps names to ``(shape, dtype)``; names in ``specs`` are
    looked up as ``prefix + name``. Raises ValueError on the first mismatch.
    """
    for name, shape in expected.items():
        declared = specs.get(prefix + name)
        if declared is None:
            raise ValueError(f"the config implies a parameter {name!r} that the file lacks")
        if tuple(declared[0]) != shape or declared[1] != np.dtype(dtype):
            raise ValueError(
                f"the config implies parameter {name!r} as {dtype}{list(shape)} but the file "
                f"holds {declared[1]}{list(declared[0])}"
            )


def check_finite(arrays, path, kind="model file"):
    """Refuse parameters holding NaN or infinity (CheckpointError naming the first)."""
    for name, value in arrays.items():
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise archive.CheckpointError(
                path,
                f"parameter {name!r} holds {bad} non-finite value(s) (NaN or infinity); "
                "a model with such parameters predicts NaN",
                kind=kind,
            )


def load(path):
    """Load a model saved with ``net.save(path)``.

    The file is read without unpickling (see :mod:`trainkit.archive`); its
    JSON description is checked field by field and the parameter shapes it
    implies are compared with the shapes the file declares before any array
    is read or any network built.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    trainkit.archive.CheckpointError
        A ValueError naming the file, for anything but a sound model file,
        including non-finite parameters.
    """
    found = {}

    def expect(meta, specs):
        cls, config = _check_meta(meta)
        expected = param_shapes(config)
        check_shapes(expected, specs, config["dtype"])
        found.update(cls=cls, config=config)

    arrays, _ = archive.load(path, expect=expect, kind="model file")
    check_finite(arrays, path)
    try:
        net = found["cls"](**found["config"])
        net.set_params(arrays, source="parameters")
    except (ValueError, TypeError) as error:
        raise archive.CheckpointError(path, error, kind="model file") from None
    return net
