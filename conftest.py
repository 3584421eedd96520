"""Test configuration shared by the test suite and the doctests.

The suite compiles with what a user gets: PyTensor's ``config.mode`` is left
at its default, so trainkit resolves every model to its default backend
(JAX, ``trainkit.backend.resolve``), and subprocesses and MPI workers inherit
no mode either. PyTensor reads its flags once, at import time, so the rest
is set here, before anything imports it: float32, any accidental float64
variable an error, and no C compiler (no op falls back to one).

FAST_COMPILE (Python implementations, nothing compiled) only where a test
says why, with the ``fast_compile`` marker: the tests of symbolic graph math
that build raw PyTensor functions (no trainkit model) and compare them with
numpy. Those would otherwise compile with PyTensor's own default, Numba,
whose cold compiling costs seconds per tiny function (``test_assembly.py``
alone took 500 s cold on two busy cores, about 1 s under FAST_COMPILE);
what they test is the graph, not a backend. The backends themselves are
compared in ``test_backend_parity.py`` (JAX), ``test_numba_backend.py``
(Numba, marked ``numba``) and ``test_ops_backends.py``.
"""

import os

TEST_FLAGS = "floatX=float32,warn_float64=raise,cxx="
# flags already in the environment come after ours, so they win where they overlap
# (e.g. mode=NUMBA to run the whole suite on another backend) and add to the rest
os.environ["PYTENSOR_FLAGS"] = ",".join(
    flags for flags in (TEST_FLAGS, os.environ.get("PYTENSOR_FLAGS", "")) if flags
)


import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent

#: test modules of raw-graph math (see the docstring), run under FAST_COMPILE
FAST_COMPILE_MODULES = {
    "test_assembly.py",
    "test_losses_activations.py",
    "test_ops_fused.py",
    "test_optimizers_dtype.py",
    "test_optimizers_reference.py",
    "test_optimizers_registry.py",
    "test_optimizers_table.py",
    "test_regularizers_constraints.py",
    "test_regularizers_contractive.py",
    "test_regularizers_graph.py",
    "test_regularizers_penalties.py",
    "test_regularizers_stochastic.py",
}
#: single tests elsewhere that compile raw graphs of the fused ops in float64 against a
#: scan or PyTorch reference (Numba also warns there that it cannot cache the op's
#: kernel, an error under filterwarnings=error)
FAST_COMPILE_TESTS = (
    "tests/test_recurrent_layers.py::test_fused_and_scan_layers_agree",
    "tests/test_recurrent_layers.py::test_bidirectional_names_sizes_and_marks",
    "tests/test_recurrent_layers.py::test_padding_is_invisible",
    "tests/test_recurrent_layers.py::test_graph_masks_reach_penalties",
    "tests/test_ops_backends.py::test_lstm_matches_torch",
    "tests/test_trainer_schedules.py::test_schedules_set_the_rate_of_each_update_without_recompiling",
)
#: docstring examples that compile raw graphs the same way (files or folders)
FAST_COMPILE_DOCTESTS = (
    "regularizers",
    "trainkit/optimizers",
    "trainkit/training/assembly.py",
    "trainkit/training/monitors.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path)).resolve()
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else ""
        doctest = type(item).__name__ == "DoctestItem"
        if (
            (not doctest and path.name in FAST_COMPILE_MODULES)
            or (doctest and relative.startswith(FAST_COMPILE_DOCTESTS))
            or item.nodeid.startswith(FAST_COMPILE_TESTS)
        ):
            if item.get_closest_marker("numba") is None:
                item.add_marker(pytest.mark.fast_compile)


@pytest.fixture(autouse=True)
def _fast_compile_where_marked(request):
    """``mode=FAST_COMPILE`` for the tests marked ``fast_compile`` (see above)."""
    if request.node.get_closest_marker("fast_compile") is None:
        yield
        return
    import pytensor

    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        yield


@pytest.fixture
def rng(request):
    """A random generator seeded by the test's own id: no test depends on another's draws."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
