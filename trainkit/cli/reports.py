"""``trainkit list``, ``describe`` and ``explain``: what there is, and what a model or a
config holds, without training anything."""

import json
import os
import re
from pathlib import Path

import click

from ..models.summary import model_info, model_text
from ..training.assembly import DEFAULT_LEARNING_RATE
from . import config, configcheck, introspect, shipped
from .configinput import load_config
from .errors import UserError, handle_errors
from .introspect import value_text

# -- list ---------------------------------------------------------------------------


def _first_line(obj):
    import inspect

    doc = inspect.getdoc(obj) or ""
    line = doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""
    return re.sub(r":\w+:`([^`]*)`", r"\1", line).replace("``", "")


LISTS = ("optimizers", "regularizers", "options", "layers", "config", "examples")


@click.command(name="list")
@click.argument("what", required=False, type=click.Choice(["all", *LISTS]), default="all")
@handle_errors
def list_(what):
    """List optimizers, regularizers, trainer options, layer vocabulary, the keys of
    [model] and [data], and examples.

    Every name is a key of a config's [training] (or [model], [data])
    section, with its default. WHAT narrows the list to one part.
    """
    import regularizers

    from .. import layers, optimizers
    from ..layers import activations
    from ..models import losses
    from ..optimizers.registry import lookup
    from ..training import options

    parts = LISTS if what == "all" else (what,)
    blocks = []
    if "optimizers" in parts:
        lines = [
            "optimizers  (training.algo = NAME, default rmsprop; hyperparameters are [training] "
            f"keys; learning_rate defaults to {DEFAULT_LEARNING_RATE:g} for every algorithm)"
        ]
        for name in optimizers.names():
            lines.append(f"  {name:<18} {_first_line(lookup(name))}")
            hyper = optimizers.hyperparameters(name)
            if "learning_rate" in hyper:
                hyper["learning_rate"] = DEFAULT_LEARNING_RATE
            shown = " ".join(f"{k}={value_text(v)}" for k, v in hyper.items()) or "(none)"
            lines.append(f"  {'':<18} {shown}")
        blocks.append(lines)
    if "regularizers" in parts:
        lines = [
            "regularizers  ([training] NAME = weight, or NAME = {weight = ..., pattern = ...})"
        ]
        canonical = list(dict.fromkeys(regularizers.canonical(n) for n in regularizers.names()))
        titles = {}
        for name in canonical:
            aliases = regularizers.aliases(name)
            titles[name] = name + (f" (alias {', '.join(aliases)})" if aliases else "")
        width = max(map(len, titles.values()))
        for name in canonical:
            lines.append(f"  {titles[name]:<{width}} {_first_line(regularizers.lookup(name))}")
            args = " ".join(f"{k}={value_text(v)}" for k, v in regularizers.arguments(name).items())
            lines.append(f"  {'':<{width}} {args}")
        blocks.append(lines)
    if "options" in parts:
        lines = [
            "trainer options  ([training] keys; the optimizer is training.algo, default rmsprop)"
        ]
        for name, option in options.OPTIONS.items():
            note = " (set by the command line)" if name in configcheck.CLI_OPTIONS else ""
            default = f"{name} = {value_text(option.default)}"
            lines.append(f"  {default:<30} {option.doc}{note}")
        blocks.append(lines)
    if "layers" in parts:
        blocks.append(
            [
                "layers  ([model] layers = [input size, entry, ...])",
                f"  kinds        {', '.join(configcheck.KINDS)}",
                "  entry        SIZE, [SIZE, ACTIVATION], or {size = ..., form = ..., "
                "activation = ..., name = ..., return_sequences = ..., bidirectional = ...}; "
                "the input entry {size = ..., lengths = true} takes sequence lengths "
                '([data] lengths = "NAME")',
                f"  forms        {', '.join(layers.forms())}",
                f"  activations  {', '.join(activations.names())}",
                f"  losses       {', '.join(losses.names())} ("
                + "; ".join(f"{k}: {', '.join(k_cls.allowed_losses)}" for k, k_cls in _kinds())
                + ")",
            ]
        )
    if "config" in parts:
        for section, keys in (("model", configcheck.MODEL_KEYS), ("data", configcheck.DATA_KEYS)):
            lines = [f"[{section}] keys"]
            lines += [f"  {key:<18} {doc}" for key, doc in keys.items()]
            blocks.append(lines)
    if "examples" in parts:
        lines = ["examples  (trainkit train --example NAME)"]
        for name, (path, description) in shipped.examples().items():
            lines.append(f"  {name:<10} {description}")
            lines.append(f"  {'':<10} {path}")
        blocks.append(lines)
    click.echo("\n\n".join("\n".join(lines) for lines in blocks))


# -- describe -----------------------------------------------------------------------


def _network_from(target, example, overrides, mode=None):
    """A network from a model file, a run directory, a config file or an example."""
    from ..models import load as load_model

    if example is not None or (target is not None and target.lower().endswith(".toml")):
        cfg = load_config(target, example, overrides)
        return cfg.network(), cfg
    if target is None:
        raise UserError("give a model file, a config file, or --example NAME")
    path = Path(target)
    if path.is_dir():
        for name in ("model.npz", "config.toml"):
            if (path / name).exists():
                return _network_from(os.fspath(path / name), None, overrides, mode)
        raise UserError(f"{target}: a directory without model.npz or config.toml")
    if overrides:
        raise UserError("--set applies to configs, not to model files")
    if not path.exists():
        raise UserError(f"{target}: no such file")
    net = load_model(path)
    if mode is not None:
        net.mode = mode
    return net, None


@click.command()
@click.argument("target", metavar="[MODEL_OR_CONFIG]", required=False)
@click.option("--example", metavar="NAME", help="Describe a shipped example config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@handle_errors
def describe(target, example, overrides, as_json):
    """Show a model's layers, parameter names and shapes, and output names.

    MODEL_OR_CONFIG is a saved model (model.npz), a run directory or a TOML
    config; nothing is compiled. The names are what regularizer patterns
    match: parameters LAYER.PARAM (hid1.w), outputs LAYER:OUTPUT (hid1:out).
    """
    net, _ = _network_from(target, example, overrides)
    info = model_info(net)
    click.echo(json.dumps(info, indent=2) if as_json else model_text(info))


# -- explain ------------------------------------------------------------------------


@click.command()
@click.argument("config_path", metavar="[CONFIG]", required=False)
@click.option("--example", metavar="NAME", help="Explain a shipped example config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@handle_errors
def explain(config_path, example, overrides, as_json):
    """Show what each regularizer, constraint and clip in a config will touch.

    A dry run: the model is built but nothing is compiled or trained. For
    each regularizer: the parameters or outputs it selects and how it acts
    (loss penalty, training-graph noise/dropout, gradient clipping, update
    constraint); then which of them apply to each parameter and output.
    """
    cfg = load_config(config_path, example, overrides)
    with config.backend(cfg.mode):
        net = cfg.network()
        info = introspect.explain_info(cfg, net)
    click.echo(
        json.dumps(info, indent=2, default=str) if as_json else introspect.explain_text(info)
    )


def _kinds():
    """(kind name, class) of each model kind, for the losses each allows."""
    from ..models.kinds import Autoencoder, Classifier, Regressor

    return [(cls.__name__, cls) for cls in (Regressor, Classifier, Autoencoder)]
