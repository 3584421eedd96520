r"""Layers: the layer-list vocabulary, initialisation, and the feed-forward layer.

A network is described theanets-style as a list: the input size first, then
one entry per layer, the last being the output layer::

    [784, 256, (128, 'tanh'), dict(size=10, activation='softmax')]

An entry is an int (size), a ``(size, activation)`` tuple or a dict with keys
``size``, ``form`` (``'feedforward'``, ``'rnn'``, ``'lstm'``, ``'gru'``),
``activation``, ``name`` and, for recurrent forms, ``return_sequences``,
``impl``, ``bidirectional`` and ``merge`` (:mod:`trainkit.layers.recurrent`).
The input entry may be a dict ``dict(size=..., name=..., lengths=True)``:
``lengths=True`` says the data carry per-example sequence lengths.
Layers are named ``in``, ``hid1``, ``hid2``, ..., ``out`` unless named; each
output is named ``LAYER:OUTPUT`` and each parameter ``LAYER.PARAM``.
"""

from collections import OrderedDict

import numpy as np
import pytensor

from regularizers.errors import InvalidArgument, UnknownArgument, closest_hint, unknown

from . import activations

__all__ = ["Layer", "Feedforward", "register_form", "forms", "parse_layers", "glorot", "orthogonal"]

_FORMS = OrderedDict()
_FORM_ALIASES = {"ff": "feedforward", "dense": "feedforward"}


def register_form(name):
    """Class decorator: make a Layer subclass available as ``form=name``."""

    def decorate(cls):
        if name in _FORMS:
            raise ValueError(f"register_form: form {name!r} is already registered")
        cls.form = name
        _FORMS[name] = cls
        return cls

    return decorate


def forms():
    """Registered layer forms (aliases excluded), sorted."""
    return sorted(_FORMS)


# -- initialisation ------------------------------------------------------------


def glorot(rng, n_in, n_out, dtype):
    r"""Glorot & Bengio (2010) uniform: :math:`U(-a, a)`, :math:`a = \sqrt{6/(n_{in}+n_{out})}`."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)


def orthogonal(rng, n, dtype):
    """A random ``n x n`` orthogonal matrix (Saxe et al. 2014), from a QR decomposition."""
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.sign(np.diag(r))).astype(dtype)


# -- layers --------------------------------------------------------------------


class Layer:
    """Base of every layer: a name, a size, parameters and named outputs.

    Subclasses set ``form``, ``default_activation`` and ``options`` (extra
    keys a layer dict may hold), create parameters in ``init_params`` and
    return their outputs from ``build``.
    """

    form = None
    recurrent = False
    default_activation = "relu"
    #: extra layer-dict keys this form accepts, mapped to their defaults
    options = {}

    def __init__(self, name, size, n_in, activation, dtype, **options):
        self.name = name
        self.size = size
        self.n_in = n_in
        self.activation = activation
        self.dtype = dtype
        self.config_options = {k: options.get(k, d) for k, d in self.options.items()}
        self.params = OrderedDict()

    def spec(self):
        """The layer's dict entry, JSON-serialisable, that rebuilds it."""
        return dict(
            size=self.size,
            form=self.form,
            activation=self.activation,
            name=self.name,
            **self.config_options,
        )

    def add_param(self, short, value):
        """Create the shared parameter ``'<layer>.<short>'`` from a numpy value."""
        full = f"{self.name}.{short}"
        value = np.asarray(value, dtype=self.dtype)
        self.params[full] = pytensor.shared(value, name=full, shape=value.shape)
        return self.params[full]

    def init_params(self, rng):
        raise TypeError(f"{type(self).__name__} does not define init_params")

    def build(self, x, lengths=None, impl=None):
        """Return (OrderedDict of output name -> expression, main output).

        ``lengths`` (per-example sequence lengths) and ``impl`` (how a
        recurrence runs) concern recurrent layers; others ignore them.
        """
        raise TypeError(f"{type(self).__name__} does not define build")

    def output_ndim(self, input_ndim):
        """Rank of the main output given the rank of the input."""
        return input_ndim

    @property
    def output_size(self):
        """Width of the main output (the next layer's input size)."""
        return self.size

    def recurrent_outputs(self):
        """Names of this layer's recurrent state sequences (none for feed-forward layers)."""
        return []

    def uses_scan(self, impl=None):
        """Whether this layer builds a ``pytensor.scan`` (JAX then needs a static length)."""
        return False


@register_form("feedforward")
class Feedforward(Layer):
    r"""Fully connected layer, applied per time step on sequences.

    .. math:: \text{pre} = x W + b, \qquad \text{out} = f(\text{pre})

    Parameters ``<name>.w`` (``n_in x size``, Glorot uniform) and ``<name>.b``
    (zeros); outputs ``<name>:pre`` and ``<name>:out``.
    """

    def init_params(self, rng):
        self.add_param("w", glorot(rng, self.n_in, self.size, self.dtype))
        self.add_param("b", np.zeros(self.size, self.dtype))

    def build(self, x, lengths=None, impl=None):
        pre = x @ self.params[f"{self.name}.w"] + self.params[f"{self.name}.b"]
        out = activations.get(self.activation)(pre)
        return OrderedDict([(f"{self.name}:pre", pre), (f"{self.name}:out", out)]), out


# -- parsing the layer list ----------------------------------------------------

_KEYS = ("size", "form", "activation", "name")


def _check_name(where, name, taken):
    if not isinstance(name, str) or not name or any(c in name for c in ":./*?[]"):
        raise InvalidArgument(
            where,
            f"layer name must be a non-empty string without ':', '.', '/' or "
            f"glob characters, got {name!r}",
        )
    if name in taken:
        raise InvalidArgument(where, f"layer name {name!r} is already used")


def _entry(where, entry):
    if isinstance(entry, bool):
        raise UnknownArgument(
            where, f"expected a size, a (size, activation) tuple or a dict, got {entry!r}"
        )
    if isinstance(entry, (int, np.integer)):
        return {"size": int(entry)}
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise InvalidArgument(where, f"a tuple entry must be (size, activation), got {entry!r}")
        return {"size": entry[0], "activation": entry[1]}
    if isinstance(entry, dict):
        return dict(entry)
    raise UnknownArgument(
        where, f"expected a size, a (size, activation) tuple or a dict, got {entry!r}"
    )


def parse_layers(layers, output_activation, hidden_activation=None, dtype="float32", seed=0):
    """Turn a layer list into (input size, input name, list of built Layer objects, lengths).

    ``lengths`` is the input entry's flag (``dict(size=..., lengths=True)``):
    whether the data carry per-example sequence lengths.

    Every entry is validated before any parameter is created; messages name
    the entry (``layers[2]``), the value, what is allowed and the closest
    valid choice.
    """
    if not isinstance(layers, (list, tuple)) or len(layers) < 2:
        raise InvalidArgument(
            "layers",
            f"expected a list of at least an input size and an output layer, got {layers!r}",
            layers,
        )
    first = _entry("layers[0]", layers[0])
    extra = set(first) - {"size", "name", "lengths"}
    if extra:
        raise InvalidArgument(
            "layers[0]", f"the input entry takes size, name and lengths, got {sorted(extra)}"
        )
    lengths = first.get("lengths", False)
    if not isinstance(lengths, bool):
        raise InvalidArgument("layers[0]", f"lengths must be True or False, got {lengths!r}")
    n_in = first.get("size")
    if isinstance(n_in, bool) or not isinstance(n_in, (int, np.integer)) or n_in < 1:
        raise InvalidArgument("layers[0]", f"size must be a positive int, got {n_in!r}")
    in_name = first.get("name", "in")
    _check_name("layers[0]", in_name, set())
    taken = {in_name}
    specs = []
    for i, raw in enumerate(layers[1:], start=1):
        where = f"layers[{i}]"
        entry = _entry(where, raw)
        form = entry.get("form", "feedforward")
        form = _FORM_ALIASES.get(form, form)
        if form not in _FORMS:
            raise InvalidArgument(
                where, unknown("form", entry.get("form"), forms(), kind="form"), entry.get("form")
            )
        cls = _FORMS[form]
        allowed = (*_KEYS, *cls.options)
        for key in entry:
            if key not in allowed:
                hint = closest_hint(key, allowed)
                raise InvalidArgument(
                    where, f"unknown key {key!r}; a {form} layer takes {', '.join(allowed)}{hint}"
                )
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InvalidArgument(where, f"size must be a positive int, got {size!r}")
        is_output = i == len(layers) - 1
        name = entry.get("name", "out" if is_output else f"hid{i}")
        _check_name(where, name, taken)
        taken.add(name)
        default = output_activation if is_output else (hidden_activation or cls.default_activation)
        activation = entry.get("activation", default)
        activations.get(activation, argument=f"{where}: activation")
        options = {k: entry[k] for k in cls.options if k in entry}
        specs.append((cls, name, int(size), activation, options))

    rng = np.random.default_rng(seed)
    built, size = [], int(n_in)
    for cls, name, n_out, activation, options in specs:
        layer = cls(name, n_out, size, activation, dtype, **options)
        layer.init_params(rng)
        built.append(layer)
        size = layer.output_size
    return int(n_in), in_name, built, lengths
