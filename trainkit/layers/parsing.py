r"""Parsing a layer list into a graph of layers whose shapes are known.

A network is described theanets-style as a list: the input entry first, then
one entry per layer, the last being the output layer::

    [784, 256, (128, 'tanh'), dict(size=10, activation='softmax')]

An entry is an int (size), a ``(size, activation)`` tuple or a dict with
``form``, ``size``, ``activation``, ``name``, ``inputs`` and the form's own
keys (see the README's layer table). The input entry is an int or a dict
with ``size`` (features), ``shape=(H, W, C)`` (channels-last images) or
``vocab=V`` (integer token ids), and optionally ``name`` and
``lengths=True`` (the data carry per-example sequence lengths).

Data shapes follow from the list: a list with any sequence form (recurrent,
``conv1d``, 1-D pooling, ``embedding``, ``attention``, ``position``) reads
``(batch, time, features)``. Each layer reads the previous layer's main
output unless it names ``inputs=['in:out', 'hid1', ...]`` (earlier outputs;
a bare layer name means its ``:out``), concatenated on the feature axis.

Parsing works out every output's :class:`~trainkit.layers.shapes.Shape`
before any parameter exists, so a bad list fails with one line naming the
entry:

>>> parse_layers([dict(vocab=50), dict(form="conv1d", size=4, kernel=3), 2], "linear")
Traceback (most recent call last):
...
regularizers.errors.InvalidArgument: layers[1]: conv1d layer 'hid1' cannot read token ids from 'in:out'; put dict(form='embedding', size=D) right after a vocab input
>>> s = parse_layers([dict(vocab=50, lengths=True), dict(form="embedding", size=8),
...                   dict(form="globalavgpool"), 3], "softmax")
>>> [(layer.name, str(layer.out_shape)) for layer in s.layers]
[('hid1', 'sequence(time, 8)'), ('hid2', 'features(8)'), ('out', 'features(3)')]
"""

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from regularizers.errors import InvalidArgument, UnknownArgument, closest_hint, unknown

from . import activations
from .base import form_class
from .shapes import Shape, first_short, param_bytes, steps

__all__ = ["Structure", "parse_layers"]

_KEYS = ("size", "form", "activation", "name", "inputs")
_INPUT_KEYS = ("size", "name", "lengths", "shape", "vocab")


@dataclass
class Structure:
    """A parsed layer list: the input and the layers, every shape known, no parameters yet."""

    input_name: str
    in_shape: Shape
    layers: list
    lengths: bool
    #: output name -> Shape, in build order (the input's first)
    shapes: OrderedDict = field(default_factory=OrderedDict)

    @property
    def n_in(self):
        """Input width: features, channels, or the vocabulary's size for token ids."""
        return self.in_shape.vocab if self.in_shape.kind == "tokens" else self.in_shape.width

    def param_shapes(self):
        """``{name: shape}`` of the parameters and then the state, without allocating."""
        shapes = OrderedDict()
        for layer in self.layers:
            shapes.update(layer.param_shapes())
        return shapes

    def state_shapes(self):
        shapes = OrderedDict()
        for layer in self.layers:
            shapes.update(layer.state_shapes())
        return shapes

    def nbytes(self, dtype):
        """Bytes the parameters and state take (Python ints, so 10**12 costs nothing)."""
        return param_bytes([*self.param_shapes().values(), *self.state_shapes().values()], dtype)

    def allocate(self, seed):
        """Create every layer's parameters (Glorot etc.) from one seeded generator."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init_params(rng)

    def check_time(self, n, argument="x"):
        """Check that a padded length of ``n`` steps leaves every strided layer a step.

        Raises InvalidArgument naming the first entry (``layers[i]``) whose
        kernel or pool is longer than the steps it reads, or whose learned
        positions are fewer than the steps.
        """
        if self.in_shape.kind not in ("sequence", "tokens"):
            return
        for layer in self.layers:
            shape = layer.in_shape
            if not shape.has_time:
                continue
            length = steps(shape.timeline, n)
            own = layer.timeline_steps()
            short = first_short(own, length) if own else None
            if short is not None:
                raise layer.fail(
                    f"{layer.window_text()} is longer than the {length} time step(s) it reads "
                    f"({argument} has {n} steps, {self.in_shape.text()}); it would leave no step"
                )
            limit = getattr(layer, "max_length", None)
            if limit is not None and length > limit:
                raise layer.fail(
                    f"max_length={limit} learned positions, but it reads {length} time steps "
                    f"({argument} has {n}); raise max_length or use kind='sine'"
                )


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


def _check_name(where, name, taken):
    if not isinstance(name, str) or not name or any(c in name for c in ":./*?[]"):
        raise InvalidArgument(
            where,
            f"layer name must be a non-empty string without ':', '.', '/' or "
            f"glob characters, got {name!r}",
        )
    if name in taken:
        raise InvalidArgument(where, f"layer name {name!r} is already used")


def _positive(where, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgument(where, f"{key} must be a positive int, got {value!r}")
    return int(value)


def _input(first, sequence):
    """(name, Shape, lengths) of the input entry."""
    where = "layers[0]"
    extra = set(first) - set(_INPUT_KEYS)
    if extra:
        key = sorted(extra)[0]
        raise InvalidArgument(
            where,
            f"unknown key {key!r}; the input entry takes {', '.join(_INPUT_KEYS)}"
            f"{closest_hint(key, _INPUT_KEYS)}",
        )
    lengths = first.get("lengths", False)
    if not isinstance(lengths, bool):
        raise InvalidArgument(where, f"lengths must be True or False, got {lengths!r}")
    given = [k for k in ("size", "shape", "vocab") if k in first]
    if len(given) != 1:
        raise InvalidArgument(
            where,
            "the input entry takes one of size=F (features), shape=(H, W, C) (images) or "
            f"vocab=V (token ids); got {', '.join(given) if given else 'none'}",
        )
    if "shape" in first:
        shape = first["shape"]
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise InvalidArgument(
                where, f"shape must be (height, width, channels) of an image, got {shape!r}"
            )
        dims = tuple(_positive(where, "shape", d) for d in shape)
        in_shape = Shape("image", dims)
    elif "vocab" in first:
        in_shape = Shape("tokens", (), vocab=_positive(where, "vocab", first["vocab"]))
    else:
        n = _positive(where, "size", first["size"])
        in_shape = Shape("sequence" if sequence else "features", (n,))
    if lengths and not in_shape.has_time:
        raise InvalidArgument(
            where,
            "lengths=True needs sequences: the list has no sequence layer (recurrent, conv1d, "
            "1-D pooling, embedding, attention) and no vocab input",
        )
    name = first.get("name", "in")
    _check_name(where, name, set())
    return name, in_shape, lengths


def _resolve_inputs(where, value, shapes, later):
    """Full output names of ``inputs=`` (earlier outputs only)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidArgument(
            where, f"inputs must be a non-empty list of earlier output names, got {value!r}"
        )
    names = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidArgument(where, f"inputs: expected output names, got {item!r}")
        full = item if ":" in item else f"{item}:out"
        if full not in shapes:
            layer = full.split(":")[0]
            if layer in later:
                raise InvalidArgument(
                    where,
                    f"inputs names {item!r}, an output of a later layer ({later[layer]}); "
                    "a layer reads earlier outputs only",
                )
            raise InvalidArgument(where, unknown("inputs", item, list(shapes), kind="output"))
        names.append(full)
    return names


def _combine(where, form, names, shapes):
    """The Shape of several inputs concatenated on the feature axis."""
    first = shapes[names[0]]
    for name in names[1:]:
        s = shapes[name]
        same = s.kind == first.kind and s.dims[:-1] == first.dims[:-1] and s.kind != "tokens"
        if same and s.kind == "sequence":
            same = s.timeline == first.timeline
        if not same:
            raise InvalidArgument(
                where,
                f"{form} layer reads {names[0]!r} {first} and {name!r} {s}, which cannot be "
                "concatenated on the feature axis (same kind and other axes needed)",
            )
    if len(names) == 1:
        return first
    return first.with_width(sum(shapes[n].width for n in names))


def parse_layers(layers, output_activation, hidden_activation=None, dtype="float32"):
    """Turn a layer list into a :class:`Structure` (shapes known, nothing allocated).

    Every entry is validated and every shape worked out before any
    parameter is created; messages name the entry (``layers[2]``), the
    value, what is allowed and the closest valid choice.
    """
    if not isinstance(layers, (list, tuple)) or len(layers) < 2:
        raise InvalidArgument(
            "layers",
            f"expected a list of at least an input size and an output layer, got {layers!r}",
            layers,
        )
    first = _entry("layers[0]", layers[0])
    entries = []
    for i, raw in enumerate(layers[1:], start=1):
        where = f"layers[{i}]"
        entry = _entry(where, raw)
        entries.append((where, entry, form_class(entry.get("form", "feedforward"), where)))
    sequence = any(cls.sequence_form for _, _, cls in entries)
    in_name, in_shape, lengths = _input(first, sequence)
    shapes = OrderedDict([(f"{in_name}:out", in_shape)])
    later = OrderedDict()
    for i, (where, entry, _) in enumerate(entries, start=1):
        name = entry.get("name", "out" if i == len(entries) else f"hid{i}")
        if isinstance(name, str):
            later.setdefault(name, where)
    taken, built, main = {in_name}, [], f"{in_name}:out"
    by_name = {}
    for i, (where, entry, cls) in enumerate(entries, start=1):
        form = cls.form
        allowed = (*_KEYS, *cls.options)
        for key in entry:
            if key not in allowed:
                hint = closest_hint(key, allowed)
                raise InvalidArgument(
                    where, f"unknown key {key!r}; a {form} layer takes {', '.join(allowed)}{hint}"
                )
        is_output = i == len(entries)
        name = entry.get("name", "out" if is_output else f"hid{i}")
        _check_name(where, name, taken)
        taken.add(name)
        later.pop(name, None)
        explicit = "inputs" in entry
        names = _resolve_inputs(where, entry["inputs"], shapes, later) if explicit else [main]
        size = entry.get("size")
        if size is not None or cls.needs_size:
            if size is None:
                raise InvalidArgument(where, f"a {form} layer needs size= (its output width)")
            size = _positive(where, "size", size)
        if is_output:
            default = output_activation
        elif cls.mixes:
            default = hidden_activation or cls.default_activation
        else:
            default = "linear"
        activation = entry.get("activation", default)
        activations.get(activation, argument=f"{where}: activation")
        options = {k: entry[k] for k in cls.options if k in entry}
        in_shapes = [shapes[n] for n in names]
        for n, s in zip(names, in_shapes, strict=True):
            if s.kind not in cls.reads:
                raise InvalidArgument(where, _misread(form, name, n, s, cls.reads))
        combined = (
            in_shapes[0] if getattr(cls, "many", False) else _combine(where, form, names, shapes)
        )
        n_in = combined.width
        try:
            layer = cls(name, size, n_in, activation, dtype, **options)
        except InvalidArgument as error:
            raise InvalidArgument(where, error.problem) from None
        layer.where, layer.input_names, layer.explicit_inputs = where, names, explicit
        layer.in_shapes, layer.in_shape = in_shapes, combined
        if hasattr(layer, "link"):
            layer.link(by_name)
        layer.out_shape = layer.output_shape(combined)
        if layer.size is None:
            layer.size = layer.out_shape.width
        elif not cls.needs_size and layer.out_shape.width != size:
            raise layer.fail(f"size={size} but its output is {layer.out_shape.width} wide")
        shapes.update(layer.named_shapes())
        main = layer.main_output
        by_name[name] = layer
        built.append(layer)
    return Structure(in_name, in_shape, built, lengths, shapes)


def _misread(form, name, source, shape, reads):
    if shape.kind == "tokens":
        return (
            f"{form} layer {name!r} cannot read token ids from {source!r}; put "
            "dict(form='embedding', size=D) right after a vocab input"
        )
    plural = {"features": "features", "sequence": "sequences", "image": "images"}
    kinds = " or ".join(f"{plural[k]} {Shape(k, (1,)).array()}" for k in reads if k in plural)
    return f"{form} layer {name!r} reads {kinds}; its input {source!r} is {shape}"
