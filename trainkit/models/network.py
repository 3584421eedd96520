r"""The network behind every model: a layer list built into a named graph, trained and used.

The kinds of model (``Regressor``, ``Classifier``, ``Autoencoder``) are in
:mod:`trainkit.models.kinds`. Training (``train``, ``itertrain``) is in
:mod:`trainkit.models.fitting` and prediction (``predict``) in
:mod:`trainkit.models.prediction`, the two bases of :class:`Network`; the
:class:`Task` a trainer gets from it is in :mod:`trainkit.models.task`.

>>> import numpy as np, trainkit
>>> net = trainkit.Regressor([3, (4, "tanh"), 2])
>>> net.graph()
Graph(outputs=[in:out, hid1:pre, hid1:out, out:pre, out:out], params=[hid1.w, hid1.b, out.w, out.b], inputs=[x], hidden=[hid1:out], recurrent=[])
>>> net.predict(np.zeros((5, 3), "float32")).shape
(5, 2)
"""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt

import regularizers
from regularizers.errors import (
    InvalidArgument,
    UnknownArgument,
    closest,
    closest_hint,
)

from ..backend import is_jax
from ..data.arrays import ArraySpec
from ..layers import parse_layers
from . import losses
from .fitting import Fitting
from .graphbuild import build_outputs, check_memory, input_mask
from .prediction import Prediction
from .task import Task

__all__ = ["Network"]


class Network(Fitting, Prediction):
    """A feed-forward or recurrent network built from a layer list.

    Parameters
    ----------
    layers : list
        Input size, then one entry per layer (see :mod:`trainkit.layers`).
    loss : str, optional
        Loss name (:mod:`trainkit.losses`); default per model kind.
    hidden_activation : str, optional
        Activation of hidden layers that name none; default each form's own
        (relu for feed-forward, tanh for recurrent).
    seed : int
        Seed of the parameter initialisation.
    dtype : str
        Parameter and data dtype, ``'float32'`` (default) or ``'float64'``.
    mode : str or pytensor Mode, optional
        PyTensor mode for compiled functions (None: trainkit's default,
        ``'JAX'``, unless PyTensor's ``config.mode`` was set; ``'NUMBA'`` for
        PyTensor's Numba backend; see :func:`trainkit.backend.resolve`).
    """

    default_loss = "mse"
    allowed_losses = ("mse", "mae", "binary_xent")
    default_output_activation = "linear"

    def __init__(
        self, layers, loss=None, hidden_activation=None, seed=0, dtype="float32", mode=None
    ):
        kind = type(self).__name__
        loss = self.default_loss if loss is None else loss
        if loss not in self.allowed_losses:
            raise InvalidArgument(
                "loss",
                f"unknown loss {loss!r} for a {kind}; choose from "
                f"{', '.join(self.allowed_losses)}{closest_hint(loss, self.allowed_losses)}",
                loss,
                self.allowed_losses,
                closest(loss, self.allowed_losses) if isinstance(loss, str) else [],
            )
        if dtype not in ("float32", "float64"):
            raise InvalidArgument("dtype", f"must be 'float32' or 'float64', got {dtype!r}", dtype)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise UnknownArgument("seed", f"must be an int, got {seed!r}", seed)
        required = losses.REQUIRED_ACTIVATION.get(loss)
        output_activation = required or self.default_output_activation
        #: the parsed layer list: every layer's shapes, known before any parameter exists
        self.structure = parse_layers(layers, output_activation, hidden_activation, dtype=dtype)
        check_memory(self.structure, dtype)
        self.structure.allocate(int(seed))
        self.input_name = self.structure.input_name
        self.layers = self.structure.layers
        self.variable_lengths = self.structure.lengths
        #: input width: features, image channels, or the vocabulary's size for token ids
        self.n_in = self.structure.n_in
        out = self.layers[-1]
        if required and out.activation != required:
            raise InvalidArgument(
                "loss",
                f"{kind}: {loss!r} needs a {required} output layer; "
                f"layer {out.name!r} uses {out.activation!r}",
                loss,
            )
        self.loss_name = loss
        self.hidden_activation = hidden_activation
        self.seed = int(seed)
        self.dtype = dtype
        self.mode = mode
        self._build()
        self._functions = {}
        #: the Trainer of the last ``train``/``itertrain`` call
        self.trainer = None

    # -- graph -------------------------------------------------------------------

    def _build(self):
        shape = self.structure.in_shape
        #: the kind of data read: 'features', 'sequence', 'image' or 'tokens'
        self.input_kind = shape.kind
        self.is_recurrent = any(layer.recurrent for layer in self.layers)
        #: whether the data have a time axis (sequences or token ids)
        self.is_sequence = shape.has_time
        if shape.kind == "tokens":
            self.x = pt.tensor("x", dtype="int32", shape=(None, None))
        else:
            static = (None,) * (shape.ndim - len(shape.dims)) + tuple(shape.dims)
            if shape.kind == "sequence":
                static = (None, None, shape.dims[0])
            self.x = pt.tensor("x", dtype=self.dtype, shape=static)
        #: per-example sequence lengths, an int32 vector, when the input entry says lengths=True
        self.lengths = (
            pt.tensor("lengths", dtype="int32", shape=(None,)) if self.variable_lengths else None
        )
        self.hidden = [f"{layer.name}:out" for layer in self.layers[:-1]]
        self.recurrent = [name for layer in self.layers for name in layer.recurrent_outputs()]
        self.params = OrderedDict(
            (name, p) for layer in self.layers for name, p in layer.params.items()
        )
        #: non-trainable state (batch normalisation's running statistics), saved with the model
        self.state = OrderedDict(
            (name, v) for layer in self.layers for name, v in layer.state.items()
        )
        self._output_cache = {}
        self.outputs = self._outputs(None)
        self.output_name = next(reversed(self.outputs))
        self._targets = self._make_targets()

    def _outputs(self, time_steps, impl=None, training=False):
        """Named outputs; with ``time_steps``, for sequences of that static length.

        PyTensor's JAX backend needs the number of scan steps (and of the
        steps convolutions, pooling and attention see) known when compiling,
        so such networks on ``mode='JAX'`` are built on ``specify_shape(x,
        (None, time_steps, features))`` (fused recurrent layers read the
        length from the data and need none). ``impl`` (``'scan'``,
        ``'fused'``) overrides every recurrent layer's own ``impl`` for this
        build. ``training`` builds the training graph: batch normalisation
        with the batch's statistics (and the updates of its running ones).
        """
        key = (time_steps, impl, training)
        if key not in self._output_cache:
            with pytensor.config.change_flags(floatX=self.dtype):
                self._output_cache[key] = build_outputs(self, time_steps, impl, training)
        return self._output_cache[key][0]

    def _built(self, time_steps, impl=None, training=False):
        self._outputs(time_steps, impl, training)
        return self._output_cache[(time_steps, impl, training)]

    def step_mask(self, time_steps=None, name=None):
        """``(batch, time)`` mask of real steps (1) and padding (0) of output ``name``
        (default: the input), or None without lengths."""
        if self.lengths is None:
            return None
        outputs, _, masks = self._built(time_steps)
        if name is None:
            return input_mask(self)
        return masks.get(name)

    def graph(self, time_steps=None, impl=None):
        """This network as a :class:`regularizers.Graph` (the clean graph).

        ``time_steps`` fixes the sequence length (needed by ``mode='JAX'``
        when a layer runs as a scan, a convolution, pooling or attention);
        ``impl='scan'`` or ``'fused'`` builds every recurrent layer that way
        (``None``: each layer's own ``impl``). With ``lengths``, the graph's
        inputs include ``lengths`` and every sequence output has a mask of
        its real steps (``graph.masks``; after strided layers, of the steps
        that remain). With batch normalisation, ``graph.training`` is the
        graph training runs (batch statistics, running ones updated).
        """
        graph = self._graph(time_steps, impl, False)
        graph.training = None
        if self.state:
            graph.training = self._graph(time_steps, impl, True)
        return graph

    def _graph(self, time_steps, impl, training):
        outputs, updates, masks = self._built(time_steps, impl, training)
        inputs = {"x": self.x}
        if self.lengths is not None:
            inputs["lengths"] = self.lengths
        return regularizers.Graph(
            outputs,
            self.params,
            inputs=inputs,
            hidden=self.hidden,
            recurrent=self.recurrent,
            masks=masks,
            updates=updates,
        )

    def static_time(self, mode, x, impl=None):
        """The sequence length to build for under ``mode`` given input ``x``, or None.

        Only a scan under JAX needs it; fused recurrent layers take any length.
        """
        if not self.is_sequence or not is_jax(mode):
            return None
        if not any(layer.needs_static_time(impl) for layer in self.layers):
            return None
        return int(x.shape[1])

    @property
    def output_ndim(self):
        return self.outputs[self.output_name].ndim

    @property
    def output_size(self):
        return self.layers[-1].out_shape.width

    def _pre(self, outputs):
        """The output layer's pre-activation (its main output before ``f``)."""
        out = self.layers[-1]
        if f"{out.name}:pre" in outputs:
            return outputs[f"{out.name}:pre"]
        # recurrent output layers: the activation is inside the scan
        return outputs[self.output_name]

    def _make_targets(self):
        ndim = self.output_ndim
        y = pt.tensor("y", dtype=self.dtype, shape=(None,) * ndim)
        w = pt.tensor("weights", dtype=self.dtype, shape=(None,) * (ndim - 1))
        return y, w

    def _input_spec(self, time_steps=None):
        shape = self.structure.in_shape
        if shape.kind == "tokens":
            return ArraySpec(
                "x",
                2,
                kind="int",
                dtype="int32",
                low=0,
                high=shape.vocab - 1,
                time=time_steps,
                what="token ids",
            )
        return ArraySpec(
            "x", self.x.ndim, shape.width, kind="float", dtype=self.dtype, time=time_steps
        )

    def _lengths_spec(self):
        return ArraySpec("lengths", 1, kind="int", dtype="int32", low=0, steps_of="x")

    def _weights_spec(self):
        return ArraySpec.weights_for(self._target_spec(), dtype=self.dtype)

    def task(self, weighted=False, time_steps=None, impl=None, class_weight=None):
        """The :class:`Task` that trains this network (with sample weights or not).

        Data are ``[X, Y]`` (``[X]`` for an autoencoder), then ``lengths``
        when the input entry says ``lengths=True``, then the optional sample
        weights. Padded steps of a sequence output weigh nothing in the loss
        and the metrics. ``impl`` is passed to :meth:`graph`.
        """
        _, w = self._targets
        weights = w if weighted else None
        target, fed, target_specs, givens = self._target()
        outputs = self._outputs(time_steps, impl)
        out = outputs[self.output_name]
        specs = [self._input_spec(time_steps), *target_specs]
        inputs = [self.x, *fed]
        if self.lengths is not None:
            inputs.append(self.lengths)
            specs.append(self._lengths_spec())
            mask = self.step_mask(time_steps, self.output_name)
            if mask is not None:  # sequence outputs: padded steps weigh nothing
                weights = mask if weights is None else weights * mask
        loss_weights = self._loss_weights(weights, target, class_weight)  # fitting.py
        loss = losses.get(self.loss_name)(self._pre(outputs), out, target, loss_weights)
        if weighted:
            inputs.append(w)
            specs.append(self._weights_spec())
        return Task(
            self.graph(time_steps, impl),
            loss,
            inputs,
            self._metrics(out, target, weights),
            specs,
            self.loss_name,
            givens=givens,
            batch_weight=None if weights is None else pt.sum(weights),
        )

    def _target(self):
        """What the loss compares with: (variable, fed inputs, their specs, givens)."""
        y, _ = self._targets
        return y, [y], [self._target_spec()], {}

    def _target_spec(self):
        return ArraySpec("y", self.output_ndim, self.output_size, kind="float", dtype=self.dtype)

    def _metrics(self, out, y, weights):
        return OrderedDict()

    # -- saving ------------------------------------------------------------------

    def config(self):
        """The constructor arguments, JSON-serialisable (layers fully spelled out)."""
        shape = self.structure.in_shape
        if shape.kind == "image":
            entry = {"shape": list(shape.dims)}
        elif shape.kind == "tokens":
            entry = {"vocab": shape.vocab}
        else:
            entry = {"size": self.n_in}
        if self.input_name != "in":
            entry["name"] = self.input_name
        if self.variable_lengths:
            entry["lengths"] = True
        return {
            "layers": [entry, *[layer.spec() for layer in self.layers]],
            "loss": self.loss_name,
            "hidden_activation": self.hidden_activation,
            "seed": self.seed,
            "dtype": self.dtype,
        }

    def save(self, path):
        """Write the model to ``path``: arrays plus JSON, no pickles, atomically.

        The file is a ``.npz`` archive that :func:`trainkit.load` reads
        without unpickling (see :mod:`trainkit.models.io`).
        """
        from . import io

        io.save(self, path)

    def set_params(self, arrays, source="parameters"):
        """Set every parameter (and state, e.g. running statistics) from a name -> array
        mapping (names, shapes, dtypes checked)."""
        variables = OrderedDict([*self.params.items(), *self.state.items()])
        missing = [n for n in variables if n not in arrays]
        extra = [n for n in arrays if n not in variables]
        if missing or extra:
            raise ValueError(
                f"{source}: parameter names do not match the model "
                f"(missing {missing}, unexpected {extra})"
            )
        for name, p in variables.items():
            value = np.asarray(arrays[name])
            expected = p.get_value(borrow=True)
            if value.shape != expected.shape or value.dtype != expected.dtype:
                raise ValueError(
                    f"{source}: parameter {name!r} is {value.dtype}{list(value.shape)}; "
                    f"the model has {expected.dtype}{list(expected.shape)}"
                )
        for name, p in variables.items():
            p.set_value(np.array(arrays[name], copy=True))

    def summary(self):
        """Layers, parameter shapes and counts, and output names (Keras' ``summary``).

        Returns the report as text, which shows as itself at a prompt; the
        same report as ``trainkit describe``.
        """
        from .summary import Summary, model_info, model_text

        return Summary(model_text(model_info(self)))

    def evaluate(self, x, y=None, weights=None, batch_size=None, lengths=None):
        """Loss and metrics on held-out data, as a dict (Keras' ``evaluate``).

        ``y`` is the targets (labels for a classifier; none for an
        autoencoder), ``weights`` optional sample weights, ``lengths`` each
        sequence's real steps (padded steps enter no loss or metric). See
        :func:`trainkit.models.metrics.evaluate_arrays` for the metrics of
        each kind of model.
        """
        from .metrics import evaluate_arrays

        return evaluate_arrays(self, x, y, weights, batch_size=batch_size, lengths=lengths)

    def __repr__(self):
        layers = ", ".join(f"{layer.name}:{layer.form}({layer.size})" for layer in self.layers)
        shape = self.structure.in_shape
        size = shape.vocab if shape.kind == "tokens" else "x".join(map(str, shape.dims))
        return f"{type(self).__name__}({self.input_name}({size}), {layers})"
