"""``trainkit lr-find run.toml``: the learning-rate range test on a config's model and data.

::

    trainkit lr-find run.toml                    # rates, smoothed losses, a suggestion
    trainkit lr-find run.toml --max-lr 10 -o runs/lr_find.png --json

It builds the config's model, loads its ``[data]`` (the training part, when
``valid_fraction`` holds some out) and runs
:meth:`~trainkit.models.network.Network.find_learning_rate` with the
config's ``algo`` and ``[training]`` keywords; the learning rate, its
schedule and the run's limits are the test's, and the options that write
into a run directory (``loggers``, ``keep_best``, ``save_every``) are left
out, since the test writes nothing but its plot. It prints one line per
update (rate, smoothed loss), then the suggested rate, and draws
``lr_find.png``.
"""

import json
import tempfile

import click

from regularizers.errors import ArgumentError

from ..training.lr_finder import DEFAULTS, check_settings
from . import config, files, run
from .configinput import load_config
from .errors import DataError, handle_errors

__all__ = ["lr_find"]

#: [training] keys the range test has no use for (they write into a run directory)
LEFT_OUT = ("loggers", "keep_best", "save_every", "run_dir", "resume")


@click.command("lr-find")
@click.argument("config_path", metavar="[CONFIG]", required=False)
@click.option("--example", metavar="NAME", help="Use a shipped example config (e.g. digits).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, as for trainkit train. Repeatable.",
)
@click.option("--min-lr", type=float, default=DEFAULTS["min_lr"], show_default=True)
@click.option("--max-lr", type=float, default=DEFAULTS["max_lr"], show_default=True)
@click.option("--num-updates", type=int, default=DEFAULTS["num_updates"], show_default=True)
@click.option(
    "--early-stop-threshold",
    type=float,
    default=DEFAULTS["early_stop_threshold"],
    show_default=True,
    help="Stop when the smoothed loss exceeds this many times its lowest.",
)
@click.option(
    "-o",
    "--output",
    default="lr_find.png",
    show_default=True,
    help="Where to draw the smoothed loss against the rate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@handle_errors
def lr_find(
    config_path,
    example,
    overrides,
    min_lr,
    max_lr,
    num_updates,
    early_stop_threshold,
    output,
    as_json,
):
    """Find a learning rate: an exponential range test (Smith 2015).

    Trains CONFIG's model for up to --num-updates updates while the
    learning rate grows from --min-lr to --max-lr (Lightning's
    defaults), stopping when the smoothed training loss exceeds
    --early-stop-threshold times its lowest. Prints each rate and
    smoothed loss and the suggested rate (where the loss falls
    fastest), and draws lr_find.png. Nothing is trained for good and
    nothing but the plot is written.
    """
    settings = dict(
        min_lr=min_lr,
        max_lr=max_lr,
        num_updates=num_updates,
        early_stop_threshold=early_stop_threshold,
    )
    try:
        check_settings(**settings, beta=DEFAULTS["beta"])
    except ArgumentError as error:  # about a flag, not the config
        raise ValueError(f"--{error.argument.replace('_', '-')}: {error.problem}") from None
    cfg = load_config(config_path, example, overrides)
    net = run.prepare(cfg)
    kwargs = {k: v for k, v in cfg.training_kwargs().items() if k not in LEFT_OUT}
    kwargs.update(progress=False, log=False)
    with config.backend(cfg.mode):
        with tempfile.TemporaryDirectory(prefix="trainkit-split-") as scratch:
            try:
                data = files.load(cfg.data, cfg.kind, scratch)
                data.train[0] = files.fit_input(data.train[0], net.n_in, net.structure.in_shape)
            except DataError as error:
                raise run.data_error(cfg, error) from error
            try:
                found = net.find_learning_rate(data.train, algo=cfg.algo, **settings, **kwargs)
            except (ValueError, TypeError) as error:
                raise cfg.rephrase("training", error) from error
    found.plot(output)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rates": found.rates,
                    "losses": found.losses,
                    "suggestion": found.suggestion,
                    "stop_reason": found.stop_reason,
                    "plot": output,
                }
            )
        )
        return
    click.echo(f"{'learning_rate':>13}  smoothed loss")
    for rate, loss in zip(found.rates, found.losses, strict=True):
        click.echo(f"{rate:13.3e}  {loss:.6g}")
    click.echo(f"stopped after {len(found.rates)} updates: {found.stop_reason}")
    if found.suggestion is None:
        click.echo("no suggestion: too few updates (raise --num-updates or --max-lr)")
    else:
        click.echo(
            f"suggested learning_rate {found.suggestion:.3g} (where the smoothed loss falls "
            f"fastest); train with --set training.learning_rate={found.suggestion:.3g}"
        )
    click.echo(f"wrote {output}")
