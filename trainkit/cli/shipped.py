"""The example configs shipped with trainkit: ``trainkit/cli/examples/*.toml``.

``trainkit train --example NAME`` reads one; ``trainkit list examples``
shows them with the first comment line of each.

>>> sorted(examples())[:1], example_path("digits").name
(['digits'], 'digits.toml')
>>> example_path("digit")
Traceback (most recent call last):
...
trainkit.cli.errors.ConfigError: --example: unknown example 'digit'; choose from digits (closest: digits)
"""  # noqa: E501

from pathlib import Path

from regularizers.errors import unknown

from .errors import ConfigError

__all__ = ["EXAMPLES_DIR", "example_path", "examples"]

EXAMPLES_DIR = Path(__file__).parent / "examples"


def examples():
    """Shipped example configs: ``{name: (path, one-line description)}``, by name."""
    found = {}
    for path in sorted(EXAMPLES_DIR.glob("*.toml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        first = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "")
        found[path.stem] = (path, first)
    return found


def example_path(name):
    """The path of the shipped example ``name``; ConfigError naming the closest."""
    shipped = examples()
    if name not in shipped:
        raise ConfigError(unknown("--example", name, shipped, kind="example"))
    return shipped[name][0]
