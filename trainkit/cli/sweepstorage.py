"""Where a sweep's study lives: Optuna storages, and ``SweepError``.

:func:`open_storage` opens a database URL (with heartbeats, so trials of
dead workers are retried) or a journal file (the default,
``RUN_DIR/journal.log``). :func:`_masked` hides a URL's password (what
``sweep.json`` keeps). :class:`SweepError` is the one error of
``trainkit sweep`` for a bad sweep input or storage; it is here, below every
other sweep module, so that each can raise it. Optuna is imported only when
it is needed, and kept quiet (:func:`_quiet_optuna`).
"""

import os
import warnings
from pathlib import Path

import click

from ..tuning import require_optuna

__all__ = ["SweepError", "open_storage"]


class SweepError(click.ClickException):
    """A problem with a sweep's input or its storage: one line, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


def _quiet_optuna():
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _no_experimental_warnings():
    optuna = require_optuna()
    manager = warnings.catch_warnings()
    manager.__enter__()
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    warnings.simplefilter("ignore", FutureWarning)
    return manager


def _masked(url):
    """``url`` with its password replaced by ``***`` (what sweep.json keeps)."""
    if "://" not in url or "@" not in url.split("://", 1)[1]:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def open_storage(where, heartbeat=60, retries=3):
    """An Optuna storage from ``where``: a database URL, or a journal file's path.

    A database URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``)
    gets a heartbeat every ``heartbeat`` seconds: a trial whose worker has
    not beaten for two of them is failed and retried (up to ``retries``
    times), and the retry resumes from the trial's checkpoint. A path is a
    journal file (Optuna's ``JournalFileBackend``; the lock is a symlink, or
    an open-file lock with ``open-lock:`` before the path, for file systems
    without symlinks).
    """
    optuna = require_optuna()
    if "://" in where:
        manager = _no_experimental_warnings()
        try:
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
            return optuna.storages.RDBStorage(
                where,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=callback,
            )
        except ImportError as error:  # a database driver
            raise SweepError(f"--storage {_masked(where)}: {error}") from None
        except Exception as error:  # sqlalchemy's own errors
            raise SweepError(f"--storage {_masked(where)}: cannot open: {error}") from None
        finally:
            manager.__exit__(None, None, None)
    journal = optuna.storages.journal
    lock = None
    if where.startswith("open-lock:"):
        where = where[len("open-lock:") :]
        lock = journal.JournalFileOpenLock(where)
    os.makedirs(Path(where).parent, exist_ok=True)
    return journal.JournalStorage(journal.JournalFileBackend(where, lock_obj=lock))
