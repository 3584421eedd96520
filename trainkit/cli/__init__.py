"""The command line: ``trainkit train|sweep|list|describe|explain|predict|plot`` (see README.md).

Everything here serves the command line alone: TOML configs, data files, the
built-in data set, reports and plots. The library never imports this package.
"""

from . import sweep as _sweep  # noqa: E402,F401  (registers `trainkit sweep`)
from .commands import cli, main

__all__ = ["cli", "main"]
