"""TOML as the command line writes it: ``dumps``.

Python's ``tomllib`` reads TOML but does not write it; configs written here
(a run's resolved ``config.toml``, ``sweep --best``) use only what trainkit's
configs hold: tables of strings, numbers, booleans, arrays and inline tables.

>>> print(dumps({"training": {"algo": "adam", "hidden_dropout": {"weight": 0.2}}}))
[training]
algo = "adam"
hidden_dropout = {weight = 0.2}
<BLANKLINE>
"""

import json
import math
import numbers
import os
import re

import numpy as np

__all__ = ["NONE", "dumps"]

#: how a config spells None (TOML has no null)
NONE = "none"


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key):
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value):
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | os.PathLike):
        return json.dumps(os.fspath(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"dumps: cannot write {type(value).__name__} {value!r} as TOML")


def dumps(sections, comments=()):
    """TOML text for ``{section: {key: value}}`` (plain values, inline tables).

    ``None`` is written as ``"none"``; ``comments`` become ``#`` lines on top.

    >>> text = dumps({"training": {"algo": "adam", "noise": {"hid1:out": 0.1}, "patience": None}})
    >>> print(text)
    [training]
    algo = "adam"
    noise = {"hid1:out" = 0.1}
    patience = "none"
    <BLANKLINE>
    >>> import tomllib
    >>> tomllib.loads(text)["training"]["noise"]
    {'hid1:out': 0.1}
    """
    lines = [f"# {c}" if c else "#" for c in comments]
    for name, values in sections.items():
        if lines:
            lines.append("")
        lines.append(f"[{_toml_key(name)}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


# -- overrides ------------------------------------------------------------------
