"""trainkit's default backend, which PyTensor backend a mode means, and the backend
warnings a user cannot act on.

**The default mode is JAX** (PyTensor's JAX backend; chosen by measurement,
docs/decisions.md): where a mode is not given (``mode=None``), trainkit
compiles with ``"JAX"`` unless PyTensor's own ``config.mode`` was set to
something other than its default (``PYTENSOR_FLAGS=mode=...``, a
``.pytensorrc``, ``pytensor.config.change_flags``), which is then respected.
``mode="NUMBA"`` asks for PyTensor's default backend.

>>> with pytensor.config.change_flags(mode="Mode"):  # PyTensor's default setting
...     resolve(None), resolve("NUMBA")
('JAX', 'NUMBA')
>>> with pytensor.config.change_flags(mode="FAST_COMPILE"):  # a setting of the user's
...     resolve(None), is_jax(None), is_jax("JAX")
('FAST_COMPILE', False, True)
"""

import contextlib
import os
import warnings

import pytensor

__all__ = [
    "DEFAULT_MODE",
    "is_jax",
    "precision",
    "prepare",
    "quiet",
    "resolve",
    "use_jax_cache",
]

#: the mode trainkit compiles with when neither the call nor PyTensor's config chose one
DEFAULT_MODE = "JAX"

#: PyTensor's own default for ``config.mode`` (its Numba backend)
_PYTENSOR_DEFAULT = "Mode"

#: warnings PyTensor's JAX backend gives for every graph, about its own internals:
#: the private copy of each random generator (which trainkit writes back, see
#: ``CompiledStep.sync_generators``), shape assertions JAX cannot keep, and float64
#: accumulators JAX truncates to float32 (trainkit asks for neither; the results are
#: the same)
_NOISE = (
    r"The RandomType SharedVariables .* will not be used in the compiled JAX graph",
    r"Skipping Assert",
    r"Explicitly requested dtype \w+ requested in \w+ is not available",
    r"Skipping CheckAndRaise",
)


def resolve(mode):
    """The mode to compile with: ``mode`` if given, else the user's PyTensor
    ``config.mode`` if they set one, else :data:`DEFAULT_MODE`."""
    if mode is not None:
        return mode
    configured = pytensor.config.mode
    return DEFAULT_MODE if configured == _PYTENSOR_DEFAULT else configured


def is_jax(mode):
    """Whether ``mode`` (None: the default, see :func:`resolve`) compiles with JAX."""
    mode = resolve(mode)
    if isinstance(mode, str):
        return mode.upper() == "JAX"
    return type(getattr(mode, "linker", None)).__name__ == "JAXLinker"


def prepare(mode, dtype):
    """Get the backend ready to compile a graph of ``dtype`` under ``mode``.

    Under JAX: the persistent compilation cache (:func:`use_jax_cache`).
    JAX's 64-bit mode is not switched on here for the whole process: each
    call of a compiled function runs under :func:`precision` (through
    :class:`QuietFirstCall`), so float64 and float32 networks live side by
    side in one process.
    """
    if not is_jax(mode):
        return
    use_jax_cache()
    _import_jax_dispatch()


def _import_jax_dispatch():
    """Import PyTensor's JAX dispatch without its process-wide 64-bit switch.

    Importing it sets ``jax_enable_x64`` from ``floatX`` for the whole
    process, and trainkit compiles a float64 network under ``floatX =
    float64``: the first such network would leave every later float32 one
    computing in float64. The flag is put back as it was.
    """
    import sys

    if "pytensor.link.jax.dispatch" in sys.modules:
        return
    import jax

    before = jax.config.jax_enable_x64
    import pytensor.link.jax.dispatch  # noqa: F401

    jax.config.update("jax_enable_x64", before)


def precision(mode, x64):
    """A context with JAX's 64-bit mode on (``x64``) or off, for this thread and block only.

    PyTensor enables JAX's float64 only when ``floatX`` is float64, and JAX
    would otherwise truncate a float64 network to float32 without a word
    (its warning is one of the backend notes :func:`quiet` hides); switched
    on for the whole process it would make a float32 network's updates
    float64, which its float32 variables cannot store. Outside JAX it does
    nothing.

    >>> with precision("FAST_COMPILE", True):
    ...     pass
    """
    if not is_jax(mode):
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(bool(x64))


def _is_float64(function):
    """Whether a compiled function computes in float64 (any of its outputs is float64)."""
    maker = getattr(function, "maker", None)
    outputs = getattr(getattr(maker, "fgraph", None), "outputs", ())
    return any(getattr(out, "dtype", None) == "float64" for out in outputs)


def use_jax_cache():
    """Turn on JAX's persistent compilation cache, in PyTensor's compile directory.

    Then a second process compiling the same functions (a warm start) reads
    XLA's executables from disk instead of compiling them again. A cache the
    user chose (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left alone.
    """
    import jax

    if jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    jax.config.update(
        "jax_compilation_cache_dir", os.path.join(pytensor.config.base_compiledir, "jax")
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


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
    """A compiled function whose compiling calls are :func:`quiet`.

    Numba compiles at the first call. JAX traces again whenever an input's
    shape or type changes (the last, smaller batch of an epoch; a shared
    variable set from NumPy), and a trace is where it warns, so under JAX
    every call is quiet (about 35 µs a call), and runs under
    :func:`precision`: 64-bit on for a function with float64 outputs, off
    for the rest, whatever ran before it in the process.
    """

    def __init__(self, function, mode=None):
        self.function = function
        self._always = is_jax(mode)
        self._mode = mode
        self._x64 = _is_float64(function)
        self._called = False

    def __call__(self, *args):
        if self._called and not self._always:
            return self.function(*args)
        with quiet():
            if self._always:
                with precision(self._mode, self._x64):
                    result = self.function(*args)
            else:
                result = self.function(*args)
        self._called = True
        return result
