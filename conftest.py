"""Test configuration shared by the test suite and the doctests.

PyTensor reads its flags once, at import time, so they are set here, before
anything imports it. ``FAST_COMPILE`` keeps a cold-cache run short (see
docs/decisions.md); tests marked ``numba`` compile with ``mode="NUMBA"``
explicitly so backend-specific breakage is still caught. ``warn_float64``
turns any accidental float64 variable into an error.
"""

import os

os.environ.setdefault(
    "PYTENSOR_FLAGS", "mode=FAST_COMPILE,floatX=float32,warn_float64=raise"
)
