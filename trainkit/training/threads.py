"""How many threads the numerical libraries may use while training.

On a small shared machine one thread is the steady choice: two BLAS threads
next to another job can run several times slower than one. ``threads=N``
(``--threads N`` on the command line) limits, while training runs, the BLAS
and OpenMP pools (through ``threadpoolctl``) and Numba's parallel pool.
JAX's XLA runtime sizes its pool when it starts and does not follow; hold a
JAX process to N cores from outside (``taskset -c 0``) instead.

>>> with limit_threads(1):
...     pass
"""

import contextlib

__all__ = ["limit_threads"]


@contextlib.contextmanager
def limit_threads(n):
    """Limit BLAS/OpenMP and Numba to ``n`` threads inside the block (None: leave them)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    numba_before = None
    try:
        import numba

        numba_before = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # numba is PyTensor's dependency, but a C-only install can lack it
        pass
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        if numba_before is not None:
            import numba

            numba.set_num_threads(numba_before)
