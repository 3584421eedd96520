"""The command line: ``trainkit train|evaluate|predict|sweep|list|describe|explain|plot|lr-find``.

Everything here serves the command line alone: TOML configs, data files, the
built-in data set, reports and plots (see README.md). The library never
imports this package. Each command is a plain click command in the module of
its concept; ``cli/commands.py`` adds them all to the ``trainkit`` group.
"""

from .commands import cli, main

__all__ = ["cli", "main"]
