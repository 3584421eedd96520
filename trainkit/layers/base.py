r"""The layer base class, the form registry, initialisation, and the feed-forward layer.

A network is described theanets-style as a list (see
:mod:`trainkit.layers.parsing`): the input entry first, then one entry per
layer, the last being the output layer::

    [784, 256, (128, 'tanh'), dict(size=10, activation='softmax')]

Every form is a :class:`Layer` subclass registered with :func:`register_form`
(recurrent forms in :mod:`~trainkit.layers.recurrent`; convolution and
pooling in :mod:`~trainkit.layers.conv`; normalisation in
:mod:`~trainkit.layers.normalization`; attention in
:mod:`~trainkit.layers.attention`; ``add``, ``tied``, ``embedding``,
``position``, ``flatten`` in :mod:`~trainkit.layers.structure`). Layers are
named ``in``, ``hid1``, ``hid2``, ..., ``out`` unless named; each output is
named ``LAYER:OUTPUT`` and each parameter ``LAYER.PARAM``.
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument
from regularizers.registries import Registry

from . import activations

__all__ = [
    "Layer",
    "Feedforward",
    "register_form",
    "forms",
    "form_class",
    "glorot",
    "orthogonal",
]

_FORMS = Registry("form", "form", taken="register_form: {kind} {name!r} is already registered")
_FORMS.aliases.update(ff="feedforward", dense="feedforward")


def register_form(name):
    """Class decorator: make a Layer subclass available as ``form=name``."""

    def decorate(cls):
        _FORMS.add(name, cls)
        cls.form = name
        return cls

    return decorate


def forms():
    """Registered layer forms (aliases excluded), sorted."""
    return _FORMS.names()


def form_class(form, where):
    """The Layer class of ``form`` (a name or an alias); else one InvalidArgument naming ``where``.

    >>> form_class("dense", "layers[1]").__name__
    'Feedforward'
    >>> form_class("lstn", "layers[1]")
    Traceback (most recent call last):
    ...
    regularizers.errors.InvalidArgument: layers[1]: form: unknown form 'lstn'; choose from ... (closest: lstm)
    """
    if form not in _FORMS:
        error = _FORMS.error(form, allowed=forms())
        raise InvalidArgument(where, str(error), form, allowed=error.allowed, closest=error.closest)
    return _FORMS.lookup(form)


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
    keys a layer dict may hold), say which kinds of data they read
    (``reads``) and what they make of them (:meth:`output_shape`, computed
    when the list is parsed, before any parameter exists), list their
    parameters' shapes (:meth:`param_shapes`), create them in
    ``init_params`` and return their outputs from ``build``.

    The parser (:func:`trainkit.layers.parsing.parse_layers`) sets
    ``where`` (``'layers[2]'``), ``input_names`` (the outputs read,
    concatenated on the feature axis), ``in_shapes``, ``in_shape`` and
    ``out_shape``.
    """

    form = None
    recurrent = False
    default_activation = "relu"
    #: whether the layer mixes features with a weight (then ``hidden_activation`` and
    #: relu are its defaults; other forms are linear unless given an activation)
    mixes = True
    #: whether the form makes the data sequences (``(batch, time, features)``)
    sequence_form = False
    #: kinds of input (:data:`trainkit.layers.shapes.KINDS`) the form reads
    reads = ("features", "sequence", "image")
    #: whether ``size`` must be given (else it follows from the input)
    needs_size = True
    #: extra layer-dict keys this form accepts, mapped to their defaults
    options = {}
    #: options left out of ``spec()`` while at their default
    quiet_options = ()

    def __init__(self, name, size, n_in, activation, dtype, **options):
        self.name = name
        self.size = size
        self.n_in = n_in
        self.activation = activation
        self.dtype = dtype
        self.config_options = {k: options.get(k, d) for k, d in self.options.items()}
        self.params = OrderedDict()
        #: non-trainable state (batch normalisation's running statistics)
        self.state = OrderedDict()
        self.where = f"layer {name!r}"
        self.input_names = None
        self.in_shapes = self.in_shape = self.out_shape = None

    def spec(self):
        """The layer's dict entry, JSON-serialisable, that rebuilds it."""
        spec = dict(form=self.form, activation=self.activation, name=self.name)
        if self.needs_size:
            spec = dict(size=self.size, **spec)
        spec.update(self.config_options)
        for key in self.quiet_options:
            if spec.get(key) == self.options[key]:
                del spec[key]
        if self.input_names is not None and getattr(self, "explicit_inputs", False):
            spec["inputs"] = list(self.input_names)
        return spec

    def fail(self, problem):
        """An InvalidArgument naming this layer's entry."""
        return InvalidArgument(self.where, f"{self.form} layer {self.name!r}: {problem}")

    # -- shapes (before any parameter exists) ------------------------------------

    def output_shape(self, shape):
        """The main output's :class:`~trainkit.layers.shapes.Shape` for input ``shape``."""
        return shape.with_width(self.size)

    def named_shapes(self):
        """Output name -> Shape of every named output (after ``out_shape`` is set)."""
        return OrderedDict((f"{self.name}:{tag}", self.out_shape) for tag in ("pre", "out"))

    @property
    def main_output(self):
        """Name of the output the next layer reads by default."""
        return f"{self.name}:out"

    def param_shapes(self):
        """``{parameter name: shape}`` (trainable parameters)."""
        return OrderedDict()

    def state_shapes(self):
        """``{state name: shape}`` (non-trainable state, e.g. running statistics)."""
        return OrderedDict()

    def timeline_steps(self):
        """The strided steps this layer adds to its input's time axis (see ``shapes``)."""
        if not self.out_shape.has_time or not self.in_shape.has_time:
            return ()
        return self.out_shape.timeline[len(self.in_shape.timeline) :]

    def needs_static_time(self, impl=None):
        """Whether JAX needs the sequence length known when compiling this layer."""
        return self.uses_scan(impl)

    # -- parameters and graph ------------------------------------------------------

    def add_param(self, short, value):
        """Create the shared parameter ``'<layer>.<short>'`` from a numpy value."""
        full = f"{self.name}.{short}"
        value = np.asarray(value, dtype=self.dtype)
        self.params[full] = pytensor.shared(value, name=full, shape=value.shape)
        return self.params[full]

    def add_state(self, short, value):
        """Create the non-trainable shared variable ``'<layer>.<short>'``."""
        full = f"{self.name}.{short}"
        value = np.asarray(value, dtype=self.dtype)
        self.state[full] = pytensor.shared(value, name=full, shape=value.shape)
        return self.state[full]

    def p(self, short):
        return self.params[f"{self.name}.{short}"]

    def init_params(self, rng):
        """Create the parameters (none by default)."""

    def build(self, x, lengths=None, impl=None):
        """Return (OrderedDict of output name -> expression, main output).

        ``lengths`` (per-example sequence lengths of ``x``) concern layers
        that read sequences; ``impl`` (how a recurrence runs) recurrent
        layers; others ignore them.
        """
        raise TypeError(f"{type(self).__name__} does not define build")

    def real_steps(self, x, lengths):
        """``(batch, time)`` mask of ``x``'s real steps, or None without lengths.

        The network sets ``step_mask`` for the build (the mask of this
        layer's time axis, sliced from the input's through strided layers).
        """
        if lengths is None or x.ndim != 3:
            return None
        if getattr(self, "step_mask", None) is not None:
            return pt.cast(self.step_mask, x.dtype)
        from ..models.graphbuild import mask_of

        return mask_of(x, lengths, x.dtype)

    def build_from(self, xs, lengths=None, impl=None):
        """Outputs from the list of inputs read (concatenated on the feature axis)."""
        x = xs[0] if len(xs) == 1 else pt.concatenate(xs, axis=-1)
        return self.build(x, lengths=lengths, impl=impl)

    def finish(self, pre, extra=()):
        """``:pre`` (and ``extra`` (tag, value) pairs first), ``:out`` = activation(pre)."""
        out = activations.get(self.activation)(pre)
        outputs = OrderedDict((f"{self.name}:{tag}", v) for tag, v in extra)
        outputs[f"{self.name}:pre"] = pre
        outputs[f"{self.name}:out"] = out
        return outputs, out

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
    r"""Fully connected layer, applied per time step on sequences (per pixel on images).

    .. math:: \text{pre} = x W + b, \qquad \text{out} = f(\text{pre})

    Parameters ``<name>.w`` (``n_in x size``, Glorot uniform) and ``<name>.b``
    (zeros); outputs ``<name>:pre`` and ``<name>:out``.
    """

    def param_shapes(self):
        return OrderedDict(
            [(f"{self.name}.w", (self.n_in, self.size)), (f"{self.name}.b", (self.size,))]
        )

    def init_params(self, rng):
        self.add_param("w", glorot(rng, self.n_in, self.size, self.dtype))
        self.add_param("b", np.zeros(self.size, self.dtype))

    def build(self, x, lengths=None, impl=None):
        return self.finish(x @ self.p("w") + self.p("b"))
