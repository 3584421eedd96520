"""Test configuration shared by the test suite and the doctests.

PyTensor reads its flags once, at import time, so they are set here, before
anything imports it. ``FAST_COMPILE`` with no C compiler (``cxx=``) runs every
op's Python implementation, so a cold cache costs nothing (see
docs/decisions.md); tests marked ``numba`` compile with ``mode="NUMBA"``
explicitly so backend-specific breakage is still caught. ``warn_float64``
turns any accidental float64 variable into an error.
"""

import os

TEST_FLAGS = "floatX=float32,warn_float64=raise,cxx="
# flags already in the environment come after ours, so they win where they overlap
# (e.g. mode=NUMBA to run the whole suite on the default backend) and add to the rest
os.environ["PYTENSOR_FLAGS"] = ",".join(
    flags for flags in (TEST_FLAGS, os.environ.get("PYTENSOR_FLAGS", "")) if flags
)


import zlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng(request):
    """A random generator seeded by the test's own id: no test depends on another's draws."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
