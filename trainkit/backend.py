"""Which PyTensor backend a mode means, and the backend warnings a user cannot act on.

>>> is_jax("JAX"), is_jax("FAST_COMPILE"), is_jax(None)
(True, False, False)
"""

import contextlib
import warnings

import pytensor

__all__ = ["is_jax", "quiet"]

#: warnings PyTensor's JAX backend gives for every graph, about its own internals:
#: shape assertions JAX cannot keep, and float64 accumulators JAX truncates to float32
#: (trainkit asks for neither; the results are the same)
_NOISE = (
    r"Skipping Assert",
    r"Explicitly requested dtype \w+ requested in \w+ is not available",
    r"Skipping CheckAndRaise",
)


def is_jax(mode):
    """Whether ``mode`` (None: PyTensor's configured mode) compiles with the JAX backend."""
    if mode is None:
        mode = pytensor.config.mode
    if isinstance(mode, str):
        return mode.upper() == "JAX"
    return type(getattr(mode, "linker", None)).__name__ == "JAXLinker"


@contextlib.contextmanager
def quiet():
    """Hide the backends' warnings about their own internals, nothing else.

    That is ``_NOISE`` from the JAX backend, and Numba's performance warnings
    about the code PyTensor generates (e.g. a matrix product on a transposed
    view inside a scan's gradient): true, but nothing a user can change.
    """
    with warnings.catch_warnings():
        for message in _NOISE:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        try:
            from numba.core.errors import NumbaPerformanceWarning
        except ImportError:  # numba is PyTensor's dependency, but a C-only install can lack it
            pass
        else:
            warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)
        yield


class QuietFirstCall:
    """A compiled function whose first call (where Numba compiles) is :func:`quiet`.

    Under JAX every call is: JAX traces again whenever the input shapes change
    (the last, smaller batch of an epoch), and a trace is where it warns.
    """

    def __init__(self, function, mode=None):
        self.function = function
        self._always = is_jax(mode)
        self._traced = False

    def __call__(self, *args):
        if self._traced and not self._always:
            return self.function(*args)
        with quiet():
            result = self.function(*args)
        self._traced = True
        return result
