"""The command line: ``trainkit train|evaluate|predict|sweep|list|describe|explain|plot`` (see README.md).

Everything here serves the command line alone: TOML configs, data files, the
built-in data set, reports and plots. The library never imports this package.
"""

from . import reports as _reports  # noqa: F401  (registers list, describe, explain)
from . import sweep as _sweep  # noqa: F401  (registers `trainkit sweep`)
from .commands import cli, main

__all__ = ["cli", "main"]
