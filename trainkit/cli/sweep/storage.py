"""Where a sweep's study lives: Optuna storages.

:func:`open_storage` opens a database URL (with heartbeats, so trials of
dead workers are retried) or a journal file (the default,
``RUN_DIR/journal.log``). :func:`masked` hides a URL's password (what
``sweep.json`` keeps). A bad storage is a
:class:`~trainkit.cli.errors.SweepError`. Optuna is imported only when
it is needed, and kept quiet (:func:`quiet_optuna`).
"""

import json
import os
import time
import warnings
from pathlib import Path

from ...tuning import require_optuna
from ..errors import SweepError

__all__ = [
    "absolute",
    "check_journal",
    "masked",
    "no_experimental_warnings",
    "open_storage",
    "quiet_optuna",
    "release_stale_lock",
]


def quiet_optuna():
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def no_experimental_warnings():
    optuna = require_optuna()
    manager = warnings.catch_warnings()
    manager.__enter__()
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    warnings.simplefilter("ignore", FutureWarning)
    return manager


def masked(url):
    """``url`` with its password replaced by ``***`` (what sweep.json keeps)."""
    if "://" not in url or "@" not in url.split("://", 1)[1]:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def open_storage(where, heartbeat=60, retries=3, note=None):
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
        manager = no_experimental_warnings()
        try:
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
            return optuna.storages.RDBStorage(
                where,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=callback,
            )
        except ImportError as error:  # a database driver
            raise SweepError(f"--storage {masked(where)}: {error}") from None
        except Exception as error:  # sqlalchemy's own errors
            raise SweepError(f"--storage {masked(where)}: cannot open: {error}") from None
        finally:
            manager.__exit__(None, None, None)
    journal = optuna.storages.journal
    where = absolute(where)
    lock = None
    if where.startswith("open-lock:"):
        where = where[len("open-lock:") :]
        lock = journal.JournalFileOpenLock(where)
    os.makedirs(Path(where).parent, exist_ok=True)
    release_stale_lock(where, note)
    check_journal(where, lock, note)
    return journal.JournalStorage(journal.JournalFileBackend(where, lock_obj=lock))


def absolute(where):
    """A journal path made absolute (``open-lock:`` kept); a database URL as it is.

    Stored absolute, ``sweep.json`` works from any directory, and Optuna's lock
    (a symbolic link to the journal) never dangles.
    """
    if "://" in where:
        return where
    prefix = "open-lock:" if where.startswith("open-lock:") else ""
    return prefix + os.path.abspath(where[len(prefix) :])


#: a journal lock older than this is left by a process that died while holding it
#: (a write holds it for milliseconds; Optuna's own grace period is the same)
STALE_LOCK_SECONDS = 30


def release_stale_lock(path, note=None):
    """Remove ``path``'s journal lock when it is older than :data:`STALE_LOCK_SECONDS`.

    A ``kill -9`` during a write leaves the lock behind; Optuna releases it
    only after watching it unchanged for its grace period (never, when the
    lock is a symbolic link that dangles). Returns whether one was removed.
    """
    lock = path + ".lock"
    try:
        age = time.time() - os.lstat(lock).st_mtime
    except FileNotFoundError:
        return False
    if age < STALE_LOCK_SECONDS:
        return False
    try:
        os.unlink(lock)
    except FileNotFoundError:
        return False
    (note or (lambda line: None))(
        f"note: {lock}: released a stale journal lock ({age:.0f} s old; its process died)"
    )
    return True


def check_journal(path, lock=None, note=None):
    """Check a journal file before a sweep reads or appends to it.

    An incomplete last record (a write cut short: a ``kill -9``, a full
    disk) is removed, with a note, under the journal's lock, so that the
    next record is not appended to it; a record that is not JSON elsewhere is
    refused with the file and line named (Optuna would say only "Expecting
    value: line 1 column 1").
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    optuna = require_optuna()
    journal = optuna.storages.journal
    lock = lock or journal.JournalFileSymlinkLock(path)
    with open(path, "rb") as file:
        data = file.read()
    if not data.endswith(b"\n"):
        lock.acquire()
        try:
            with open(path, "rb+") as file:
                data = file.read()
                if not data.endswith(b"\n"):
                    keep = data.rfind(b"\n") + 1
                    file.truncate(keep)
                    (note or (lambda line: None))(
                        f"note: {path}: removed an incomplete last record ({len(data) - keep} "
                        f"bytes; a write was cut short)"
                    )
                    data = data[:keep]
        finally:
            lock.release()
    for number, line in enumerate(data.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise SweepError(
                f"{path}: line {number}: not a journal record ({error}); the journal is "
                f"damaged: restore it, or move it away to start the study again"
            ) from None
        if not isinstance(record, dict) or "op_code" not in record:
            raise SweepError(
                f"{path}: line {number}: not an Optuna journal record; the journal is damaged"
            )
