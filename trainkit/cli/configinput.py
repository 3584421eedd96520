"""The config a command reads: a TOML file or a shipped example, with ``--set`` overrides.

``train``, ``lr-find``, ``describe`` and ``explain`` take ``[CONFIG]``,
``--example NAME`` and ``--set KEY=VALUE``; :func:`load_config` turns them
into a checked :class:`~trainkit.cli.config.Config` and prints its notes on
stderr.
"""

import click

from . import config
from .errors import UserError

__all__ = ["load_config"]


def load_config(path, example, overrides):
    """The config of ``path`` or of the shipped ``example`` (one of them), with ``overrides``.

    >>> load_config(None, None, ())
    Traceback (most recent call last):
    ...
    trainkit.cli.errors.UserError: give a config file, or --example NAME (trainkit list examples)
    """
    if path is not None and example is not None:
        raise UserError(f"give a config file or --example {example}, not both")
    if path is None and example is None:
        raise UserError("give a config file, or --example NAME (trainkit list examples)")
    cfg = config.load(path, example, overrides)
    for note in cfg.notes:
        click.echo(note, err=True)
    return cfg
