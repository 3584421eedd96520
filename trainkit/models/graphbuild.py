"""Building a network's named outputs from its parsed layer graph; its memory check.

:func:`build_outputs` walks the layers of a
:class:`~trainkit.layers.parsing.Structure` in order: each reads the
outputs it names (concatenated on the feature axis), with the per-example
lengths of its time axis (carried through strided layers), and adds its
named outputs. :func:`check_memory` refuses, in one line, a network whose
parameters cannot fit in the memory left, before any is allocated.
"""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import InvalidArgument

from ..layers.shapes import available_memory, memory_text, steps

__all__ = ["build_outputs", "check_memory", "input_mask", "mask_of"]


#: a training step holds about this many copies of the parameters: the parameters, their
#: gradients, optimizer slots, the updated values, the backend's buffers (issue 15 measured
#: [4, 10**8, 2], 2.4 GB of parameters, growing to 24 GB under rmsprop on JAX)
TRAINING_COPIES = 10


def check_memory(structure, dtype, available=None, training=False):
    """Refuse a model whose parameters (and state) would not fit in the memory left.

    The estimate comes from the parsed shapes (Python ints), so
    ``[4, 10**9, 2]`` costs nothing to check. Training needs a few times
    more (gradients, the optimizer's state), which the message says.

    >>> from trainkit.layers import parse_layers
    >>> check_memory(parse_layers([4, 10**9, 2], "linear"), "float32", available=10**9)
    Traceback (most recent call last):
    ...
    regularizers.errors.InvalidArgument: layers: the parameters would take 28.0 GB (7,000,000,002 float32 values); only 1.0 GB of memory is available (training needs about 10 times the parameters' memory)
    """
    n_bytes = structure.nbytes(dtype)
    available = available_memory() if available is None else available
    if training and available is not None and TRAINING_COPIES * n_bytes > available:
        raise InvalidArgument(
            "layers",
            f"training would need about {memory_text(TRAINING_COPIES * n_bytes)} "
            f"({TRAINING_COPIES} times the parameters' {memory_text(n_bytes)}: parameters, "
            f"gradients, optimizer state); only {memory_text(available)} of memory is available",
        )
    if available is not None and n_bytes > available:
        count = sum(
            _count(s)
            for s in [*structure.param_shapes().values(), *structure.state_shapes().values()]
        )
        raise InvalidArgument(
            "layers",
            f"the parameters would take {memory_text(n_bytes)} ({count:,} {dtype} values); "
            f"only {memory_text(available)} of memory is available (training needs about "
            f"{TRAINING_COPIES} times the parameters' memory)",
        )


def _count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def mask_of(var, lengths, dtype, time=None):
    """``(batch, time)`` mask of the real steps of sequence ``var`` (1 real, 0 padding).

    With the time length known (``time``, or ``var``'s static shape) the step
    numbers are a constant; otherwise a cumulative sum of ones (PyTensor's
    JAX backend cannot trace ``arange`` of a symbolic length).
    """
    time = var.type.shape[1] if time is None else time
    if time is not None:
        steps = pt.constant(np.arange(1, time + 1, dtype="int32"))[None, :]
    else:
        ones = pt.ones_like(var[:, :, 0] if var.ndim == 3 else var, dtype="int32")
        steps = pt.cumsum(ones, axis=1)
    mask = pt.cast(pt.le(steps, lengths[:, None]), dtype)
    # its batch size is var's (an array's shape, which JAX can reshape with), not one
    # inferred from the arithmetic on lengths
    return pt.specify_shape(mask, (var.shape[0], time))


def input_mask(net):
    """The mask of the input's real steps, or None without lengths."""
    if net.lengths is None:
        return None
    return mask_of(net.x, net.lengths, net.dtype)


def _static(var, shape, time_steps):
    """``var`` with its static time length specified (JAX needs it for scans, windows)."""
    if time_steps is None or not shape.has_time:
        return var
    n = steps(shape.timeline, time_steps)
    if shape.kind == "tokens":
        return pt.specify_shape(var, (None, n))
    return pt.specify_shape(var, (None, n, shape.width))


def build_outputs(net, time_steps, impl=None, training=False):
    """(outputs, updates, masks) of ``net``'s layer graph.

    ``outputs`` maps every output name to its expression, the network's
    output last; ``updates`` are the state updates a training graph makes
    (batch normalisation's running statistics); ``masks`` map every
    sequence output to the mask of its real steps when the network reads
    lengths.
    """
    structure = net.structure
    in_out = f"{net.input_name}:out"
    outputs = OrderedDict([(in_out, net.x)])
    values = {in_out: _static(net.x, structure.in_shape, time_steps)}
    lengths_of = {(): net.lengths}
    masks_of = {}
    if net.lengths is not None:
        time = time_steps if time_steps is not None else None
        masks_of[()] = mask_of(values[in_out], net.lengths, net.dtype, time)
    updates = OrderedDict()
    for layer in net.layers:
        xs = []
        for name in layer.input_names:
            value = values.get(name, outputs[name])
            xs.append(_static(value, structure.shapes[name], time_steps))
        timeline = layer.in_shape.timeline
        lengths = lengths_of.get(timeline) if layer.in_shape.has_time else None
        layer.step_mask = masks_of.get(timeline) if lengths is not None else None
        try:
            if getattr(layer, "stateful", False):
                built, main, new = layer.build_state(
                    xs, lengths=lengths, impl=impl, training=training
                )
                updates.update(new)
            else:
                built, main = layer.build_from(xs, lengths=lengths, impl=impl)
        finally:
            layer.step_mask = None
        outputs.update(built)
        out_line = layer.out_shape.timeline if layer.out_shape.has_time else None
        if net.lengths is not None and out_line is not None and out_line not in masks_of:
            # a strided layer: the real output steps are those whose window ends on a
            # real input step, a slice of the input's mask (no arithmetic on lengths)
            mask = masks_of[timeline]
            for step in out_line[len(timeline) :]:
                what, *args = step
                if what == "conv":
                    kernel, stride, dilation = args
                    mask = mask[:, dilation * (kernel - 1) :: stride]
                else:
                    mask = mask[:, args[0] - 1 :: args[0]]
            mask = mask[:, : main.shape[1]]
            masks_of[out_line] = mask
            lengths_of[out_line] = pt.cast(pt.sum(mask, axis=1), "int32")
    out = net.layers[-1]
    outputs.move_to_end(out.main_output)
    masks = OrderedDict()
    if net.lengths is not None:
        for name, var in outputs.items():
            shape = structure.shapes.get(name)
            if shape is not None and shape.kind == "sequence" and var.ndim == 3:
                if shape.timeline in masks_of:
                    masks[name] = masks_of[shape.timeline]
    return outputs, updates, masks
