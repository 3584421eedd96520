r"""Monitors: named statistics of graph outputs reported during training.

A ``monitors`` spec maps an output pattern to statistics, theanets-style::

    monitors={'hid1:out': ('<0.1', '<0.9'), 'hid*:out': 'mean', 'out:out': np.std}

A statistic is a threshold string (``'<0.1'``: the fraction of values below
0.1; ``'>0.9'``, ``'<=x'``, ``'>=x'`` likewise), one of the names in
:data:`STATISTICS`, or a callable that takes the output tensor and returns a
symbolic scalar (reported under its ``__name__``). A dict of name ->
statistic names callables explicitly. Each matched output gives one metric
per statistic, named ``'<output><stat>'`` for thresholds (``'hid1:out<0.1'``)
and ``'<output>.<stat>'`` otherwise (``'hid1:out.mean'``). On outputs of
padded variable-length sequences (the graph's ``masks``) every statistic is
over the real steps only; a callable then receives those steps gathered as
``(steps, units)`` (a boolean selection, which PyTensor's JAX backend cannot
compile).

>>> import numpy as np, pytensor.tensor as pt, regularizers
>>> z = pt.as_tensor(np.array([[0.05, 0.5], [0.95, 0.2]], "float32"))
>>> g = regularizers.Graph({"hid1:out": z}, {})
>>> m = build({"hid*:out": ("<0.1", ">=0.5", "mean")}, g)
>>> {k: round(float(v.eval()), 4) for k, v in m.items()}
{'hid1:out<0.1': 0.25, 'hid1:out>=0.5': 0.5, 'hid1:out.mean': 0.425}
"""

import re
from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from regularizers.errors import closest_hint
from regularizers.patterns import Pattern
from regularizers.penalties import masked_mean

__all__ = ["STATISTICS", "build"]


def _rms(z):
    return pt.sqrt(pt.mean(pt.sqr(z)))


STATISTICS = {
    "mean": pt.mean,
    "std": pt.std,
    "min": pt.min,
    "max": pt.max,
    "absmean": lambda z: pt.mean(pt.abs(z)),
    "rms": _rms,
}


def _extreme(reduce, fill):
    def statistic(z, mask):
        keep = pt.shape_padright(pt.gt(mask, 0), z.ndim - 2)
        return reduce(pt.switch(keep, z, np.asarray(fill, z.dtype)))

    return statistic


def _masked_std(z, mask):
    centred = z - masked_mean(z, mask)
    return pt.sqrt(masked_mean(pt.sqr(centred), mask))


#: the statistics on outputs of padded sequences: over real steps only
MASKED_STATISTICS = {
    "mean": masked_mean,
    "std": _masked_std,
    "min": _extreme(pt.min, np.inf),
    "max": _extreme(pt.max, -np.inf),
    "absmean": lambda z, m: masked_mean(pt.abs(z), m),
    "rms": lambda z, m: pt.sqrt(masked_mean(pt.sqr(z), m)),
}

_THRESHOLD = re.compile(r"^(<=|>=|<|>)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$")
_COMPARE = {"<": pt.lt, ">": pt.gt, "<=": pt.le, ">=": pt.ge}


def _statistic(stat, where):
    """(suffix, function) for one statistic spec."""
    if callable(stat):
        name = getattr(stat, "__name__", None)
        if not name or name == "<lambda>":
            raise ValueError(
                f"{where}: a callable statistic needs a name; give a dict {{'name': callable}}"
            )
        return f".{name}", stat
    if not isinstance(stat, str):
        raise TypeError(f"{where}: a statistic must be a string or a callable, got {stat!r}")
    match = _THRESHOLD.match(stat.strip())
    if match:
        op, value = match.group(1), float(match.group(2))
        compare = _COMPARE[op]

        def fraction(z, mask=None):
            return masked_mean(pt.cast(compare(z, np.asarray(value, z.dtype)), z.dtype), mask)

        fraction.masked = True
        return f"{op}{match.group(2)}", fraction
    if stat in STATISTICS:
        masked = MASKED_STATISTICS[stat]

        def named(z, mask=None):
            return STATISTICS[stat](z) if mask is None else masked(z, mask)

        named.masked = True
        return f".{stat}", named
    allowed = [*STATISTICS, "<x", ">x", "<=x", ">=x"]
    hint = closest_hint(stat, STATISTICS)
    raise ValueError(
        f"{where}: unknown statistic {stat!r}; choose from {', '.join(allowed)} or a callable{hint}"
    )


def _statistics(value, where):
    if isinstance(value, dict):
        out = []
        for name, stat in value.items():
            if not callable(stat):
                raise TypeError(f"{where}[{name!r}]: expected a callable, got {stat!r}")
            out.append((f".{name}", stat))
        return out
    if isinstance(value, (str,)) or callable(value):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(
            f"{where}: expected statistics (a string, callable, list or dict), got {value!r}"
        )
    return [_statistic(stat, where) for stat in value]


def build(spec, graph):
    """Monitor expressions ``OrderedDict(metric name -> scalar)`` on ``graph``.

    Patterns are checked against the graph's output names (a pattern that
    matches nothing is a ``ValueError``) before anything is compiled.
    """
    if spec is None:
        return OrderedDict()
    if not isinstance(spec, dict):
        raise TypeError(f"monitors: expected a dict of {{pattern: statistics}}, got {spec!r}")
    metrics = OrderedDict()
    for pattern, value in spec.items():
        where = f"monitors[{pattern!r}]"
        stats = _statistics(value, where)
        names = Pattern(pattern, owner="monitors").select(list(graph.outputs), "output")
        for name in names:
            z = graph.outputs[name]
            mask = graph.mask(name) if hasattr(graph, "mask") else None
            for suffix, function in stats:
                if mask is None:
                    expr = function(z)
                elif getattr(function, "masked", False):
                    expr = function(z, mask)
                else:  # a user's callable sees the real steps only, (steps, units...)
                    expr = function(z[pt.gt(mask, 0).nonzero()])
                if not hasattr(expr, "ndim") or expr.ndim != 0:
                    raise ValueError(f"{where}: statistic {suffix[1:]!r} did not give a scalar")
                metrics[f"{name}{suffix}"] = (
                    pt.cast(expr, z.dtype) if expr.dtype != z.dtype else expr
                )
    return metrics
