"""What ``trainkit explain`` reports, as data and as text.

Nothing here compiles: it reads a built network's graph and what each
regularizer of a config selects and which hook it uses. (What ``trainkit
describe`` reports, the layers, parameters and outputs, is
:mod:`trainkit.models.summary`'s.)
"""

import inspect
import json

from regularizers.base import Regularizer

from .. import optimizers
from ..models.summary import table
from ..training import options
from . import configcheck

__all__ = ["HOOKS", "explain_info", "explain_text", "value_text"]


def value_text(value):
    """A default value as the command line shows it (TOML-like)."""
    if value is inspect.Parameter.empty:
        return "(required)"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


HOOKS = (
    ("modify_graph", "graph", "replaces outputs in the training graph (noise, dropout)"),
    ("loss", "penalty", "adds weight x penalty to the loss"),
    ("modify_gradients", "clip", "rescales or clips gradients"),
    ("modify_updates", "constraint", "constrains parameters after each update"),
)


def hooks_of(reg):
    return [
        short
        for method, short, _ in HOOKS
        if getattr(type(reg), method) is not getattr(Regularizer, method)
    ]


def explain_info(cfg, net):
    graph = net.graph()
    spec = cfg.check_training(graph)
    regs = spec.regularizers
    defaults = optimizers.hyperparameters(cfg.algo)
    hyper = {**{k: v for k, v in defaults.items()}, **spec.hyperparameters}
    opts = {
        k: v
        for k, v in cfg.training_kwargs().items()
        if k in options.OPTIONS
        and k not in configcheck.CLI_OPTIONS
        and v != options.OPTIONS[k].default
    }
    entries = []
    for reg in regs:
        label = reg.label or reg.name
        entries.append(
            {
                "key": label,
                "regularizer": reg.name,
                "weight": reg.weight,
                "pattern": None if reg.pattern is None else reg.pattern.spec,
                "kind": reg.kind,
                "hooks": hooks_of(reg),
                "targets": list(reg.targets(graph)),
                "arguments": {
                    k: v for k, v in reg.config().items() if k not in ("weight", "pattern")
                },
            }
        )
    params = []
    for name, p in graph.params.items():
        row = {"name": name, "shape": list(p.get_value(borrow=True).shape)}
        for _, short, _ in HOOKS[1:]:
            row[short] = [
                e["key"]
                for e in entries
                if short in e["hooks"] and e["kind"] == "parameter" and name in e["targets"]
            ]
        params.append(row)
    outputs = []
    for name in [*graph.outputs, *graph.inputs]:
        row = {"name": name}
        for short in ("penalty", "graph"):
            row[short] = [
                e["key"]
                for e in entries
                if short in e["hooks"] and e["kind"] != "parameter" and name in e["targets"]
            ]
        if row["penalty"] or row["graph"]:
            outputs.append(row)
    return {
        "config": cfg.source,
        "algo": cfg.algo,
        "hyperparameters": hyper,
        "trainer_options": opts,
        "regularizers": entries,
        "parameters": params,
        "outputs": outputs,
    }


def explain_text(info):
    hyper = ", ".join(f"{k}={v!r}" for k, v in info["hyperparameters"].items())
    lines = [
        f"{info['config']}: nothing is compiled or trained",
        f"optimizer: {info['algo']}({hyper})",
    ]
    if info["trainer_options"]:
        shown = ", ".join(f"{k}={v!r}" for k, v in info["trainer_options"].items())
        lines.append(f"trainer options: {shown}")
    lines += ["", "regularizers"]
    if not info["regularizers"]:
        lines.append("  (none)")
    meaning = {short: text for _, short, text in HOOKS}
    for e in info["regularizers"]:
        selection = f"pattern {e['pattern']!r}" if e["pattern"] is not None else "default"
        args = "".join(f", {k}={value_text(v)}" for k, v in e["arguments"].items() if v is not None)
        lines.append(f"  {e['key']} (weight {e['weight']:g}{args}): {', '.join(e['hooks'])}")
        lines.append(f"      {'; '.join(meaning[h] for h in e['hooks'])}")
        lines.append(f"      {e['kind']}s ({selection}): {', '.join(e['targets'])}")
    lines += ["", "parameters"]
    rows = [["name", "shape", "penalties", "clips", "constraints"]]
    for p in info["parameters"]:
        rows.append(
            [
                p["name"],
                "x".join(map(str, p["shape"])),
                ", ".join(p["penalty"]) or "-",
                ", ".join(p["clip"]) or "-",
                ", ".join(p["constraint"]) or "-",
            ]
        )
    lines += table(rows)
    if info["outputs"]:
        lines += ["", "outputs"]
        rows = [["name", "penalties", "noise/dropout (training only)"]]
        for o in info["outputs"]:
            rows.append([o["name"], ", ".join(o["penalty"]) or "-", ", ".join(o["graph"]) or "-"])
        lines += table(rows)
    return "\n".join(lines)
