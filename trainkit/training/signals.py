"""Ctrl-C, SIGTERM and SIGHUP as a request to stop training, for whoever owns the process.

The training loop installs no signal handlers: a library should not take over
its host's signals. The command line wraps its runs in :func:`stop_on_signals`,
and so can a Python user:

>>> import numpy as np, trainkit
>>> from trainkit.training.signals import stop_on_signals
>>> net = trainkit.Regressor([2, 1])
>>> data = [np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32")]
>>> pairs = net.itertrain(data, max_updates=3, progress=False, log=False)
>>> with stop_on_signals(net.trainer):
...     for train_metrics, valid_metrics in pairs:
...         pass
>>> net.trainer.stop_reason
'max_updates=3 reached'

The first Ctrl-C, SIGTERM or SIGHUP (the terminal closed) asks the trainer to stop after the current update
(``trainer.stop('interrupted by SIGINT')``, which ends with a final checkpoint
when ``save_progress`` is set) and records the signal in
``trainer.interrupted``; a second Ctrl-C raises ``KeyboardInterrupt`` at once.
The previous handlers come back when the block ends.
"""

import contextlib
import signal
import threading

__all__ = ["stop_on_signals", "SIGNALS"]

#: the signals that ask training to stop (SIGHUP where the platform has it)
SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())


@contextlib.contextmanager
def stop_on_signals(trainer, signals=SIGNALS):
    """Turn ``signals`` into ``trainer.stop(...)`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield trainer
        return

    def handle(signum, frame):
        name = signal.Signals(signum).name
        if trainer.interrupted == name and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.interrupted = name
        trainer.stop(f"interrupted by {name}")

    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield trainer
    finally:
        for sig, old in previous.items():
            # None: a handler not installed from Python, which cannot be put back
            signal.signal(sig, signal.SIG_DFL if old is None else old)
