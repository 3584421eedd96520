"""A model as a table: layers, parameter shapes and counts, output names.

``net.summary()`` (Keras' ``model.summary()``) and ``trainkit describe`` show
the same report; :func:`model_info` gives it as data (``describe --json``).

>>> import trainkit
>>> print(trainkit.Regressor([3, (4, "tanh"), 2]).summary())  # doctest: +ELLIPSIS
Regressor: loss mse, dtype float32, 26 parameters
<BLANKLINE>
layers
  in    input        3
  hid1  feedforward  4  tanh
  out   feedforward  2  linear
...
"""

import json

import numpy as np

__all__ = ["Summary", "model_info", "model_text", "shape_text", "table"]


class Summary(str):
    """The report as a string that shows as itself (not quoted) at a prompt."""

    def __repr__(self):
        return str(self)


def shape_text(var, net, name):
    shape = getattr(net, "structure", None) and net.structure.shapes.get(name)
    if shape:
        return shape.text()
    if name == f"{net.input_name}:out":
        last = net.n_in
    else:
        last = var.type.shape[-1] if var.ndim else None
    axes = {1: ["batch"], 2: ["batch"], 3: ["batch", "time"]}.get(var.ndim, ["?"] * var.ndim)
    if var.ndim == 1:
        return "(batch,)"
    return "(" + ", ".join([*axes, "?" if last is None else str(last)]) + ")"


def model_info(net):
    graph = net.graph()
    layers = [{"name": net.input_name, "form": "input", "size": net.n_in}]
    in_shape = net.structure.in_shape
    if in_shape.kind == "image":
        layers[0]["shape"] = list(in_shape.dims)
    elif in_shape.kind == "tokens":
        layers[0]["vocab"] = in_shape.vocab
    for layer in net.layers:
        info = {
            "name": layer.name,
            "form": layer.form,
            "size": layer.size,
            "activation": layer.activation,
            **{k: v for k, v in layer.spec().items() if k not in ("size", "form", "name")},
        }
        del info["activation"]
        info = {"activation": layer.activation, **info}
        info = {k: info[k] for k in ("name", "form", "size")} | info
        layers.append(info)
    params = []
    for name, p in graph.params.items():
        shape = list(p.get_value(borrow=True).shape)
        params.append({"name": name, "shape": shape, "size": int(np.prod(shape))})
    state = []
    for name, v in getattr(net, "state", {}).items():
        shape = list(v.get_value(borrow=True).shape)
        state.append({"name": name, "shape": shape, "size": int(np.prod(shape))})
    outputs = []
    for name, var in graph.outputs.items():
        tags = []
        if name == f"{net.input_name}:out":
            tags.append("input")
        if name in graph.hidden:
            tags.append("hidden")
        if name in graph.recurrent:
            tags.append("recurrent")
        if name == net.output_name:
            tags.append("output")
        outputs.append({"name": name, "shape": shape_text(var, net, name), "tags": tags})
    return {
        "kind": type(net).__name__,
        "loss": net.loss_name,
        "dtype": net.dtype,
        "layers": layers,
        "parameters": params,
        "state": state,
        "outputs": outputs,
    }


def table(rows, indent="  "):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def model_text(info):
    total = sum(p["size"] for p in info["parameters"])
    lines = [f"{info['kind']}: loss {info['loss']}, dtype {info['dtype']}, {total:,} parameters"]
    lines += ["", "layers"]
    rows = []
    for layer in info["layers"]:
        extra = {k: v for k, v in layer.items() if k not in ("name", "form", "size", "activation")}
        options = " ".join(f"{k}={json.dumps(v)}" for k, v in extra.items())
        rows.append(
            [layer["name"], layer["form"], layer["size"], layer.get("activation", ""), options]
        )
    lines += table(rows)
    lines += ["", "parameters  (patterns of weight_*, max_norm, max_*gradient*; default: ndim > 1)"]
    lines += table(
        [[p["name"], "x".join(map(str, p["shape"])), f"{p['size']:,}"] for p in info["parameters"]]
    )
    if info.get("state"):
        lines += ["", "state  (not trained: running statistics, saved with the model)"]
        lines += table(
            [[p["name"], "x".join(map(str, p["shape"])), f"{p['size']:,}"] for p in info["state"]]
        )
    lines += ["", "outputs  (patterns of hidden_*, recurrent_*, noise, dropout, contractive)"]
    lines += table([[o["name"], o["shape"], " ".join(o["tags"])] for o in info["outputs"]])
    lines += [
        "",
        "Patterns are shell globs over these names, e.g. "
        'weight_l2 = {weight = 1e-4, pattern = "hid*.w"}.',
    ]
    return "\n".join(lines)
