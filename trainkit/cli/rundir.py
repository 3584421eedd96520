"""A run directory's guards: one run at a time, and no run silently replaced.

``trainkit train`` takes :class:`RunLock` on its run directory for as long
as it trains: a file ``.trainkit.lock`` saying who holds it (process id,
host, start time). A second command on the same directory stops at once
and names the holder; a lock left by a process that no longer runs (a
``kill -9``, a power cut) on this host is taken over, with a note.

:func:`held_files` lists what a directory already holds of a run, so a new
run refuses it unless told ``--overwrite`` (and :func:`clear` removes them).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with RunLock(folder) as lock:
...     (folder / LOCK_NAME).exists()
True
>>> (folder / LOCK_NAME).exists()
False
"""

import json
import os
import socket
import time
from pathlib import Path

__all__ = ["LOCK_NAME", "RunDirLocked", "RunLock", "clear", "held_files"]

#: the lock file in a run directory
LOCK_NAME = ".trainkit.lock"

#: what a run leaves in its directory (a new run refuses a directory holding any)
RUN_OUTPUTS = (
    "config.toml",
    "metrics.csv",
    "metrics.jsonl",
    "checkpoint.npz",
    "model.npz",
    "curves.png",
)


class RunDirLocked(OSError):
    """Another process trains into the run directory."""


def _has_rows(path):
    """Whether a metrics file holds a row (beyond the header of a csv)."""
    try:
        with open(path, "rb") as f:
            lines = sum(1 for line in f if line.strip())
    except OSError:
        return True
    return lines > (1 if path.suffix == ".csv" else 0)


def held_files(run_dir):
    """The run files of ``run_dir`` when it holds a run, else an empty list.

    A run is held once the directory has a checkpoint, a model, curves or a
    metrics row; a ``config.toml`` and empty metrics file alone are what a
    run that failed before its first update leaves, and are not.
    """
    folder = Path(run_dir)
    present = [name for name in RUN_OUTPUTS if (folder / name).exists()]
    trained = [
        name
        for name in present
        if name != "config.toml" and (not name.startswith("metrics.") or _has_rows(folder / name))
    ]
    return present if trained else []


def clear(run_dir):
    """Remove the run files of ``run_dir`` (``--overwrite``); returns their names."""
    held = held_files(run_dir)
    for name in held:
        (Path(run_dir) / name).unlink()
    return held


def _alive(pid):
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _describe(holder):
    started = holder.get("started")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
        if isinstance(started, (int, float))
        else "an unknown time"
    )
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {when}"


class RunLock:
    """Hold ``run_dir``'s lock while the block runs (the folder is created if missing).

    Parameters
    ----------
    run_dir : str or Path
    note : callable, optional
        Called with one line when a stale lock is taken over.

    Raises
    ------
    RunDirLocked
        Another live process holds the lock: the message names it (pid,
        host, start time) and the lock file.
    """

    def __init__(self, run_dir, note=None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.note = note or (lambda line: None)
        self.held = False
        self.created = False

    def _write_new(self, me):
        """Create the lock with its content in one step (a link of a complete file)."""
        scratch = self.run_dir / f"{LOCK_NAME}.{os.getpid()}.tmp"
        scratch.write_text(json.dumps(me), encoding="utf-8")
        try:
            os.link(scratch, self.path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: exclusive creation instead
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(descriptor, "w", encoding="utf-8") as lock:
                lock.write(json.dumps(me))
        finally:
            scratch.unlink()

    def _read(self):
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def acquire(self):
        self.created = not self.run_dir.exists()
        os.makedirs(self.run_dir, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                self._write_new(me)
                self.held = True
                return self
            except FileExistsError:
                pass
            holder = self._read()
            if holder is None:  # released meanwhile
                continue
            pid = holder.get("pid")
            if holder.get("host") == me["host"] and isinstance(pid, int) and not _alive(pid):
                self.note(
                    f"note: {self.path}: took over a stale lock ({_describe(holder)}; "
                    f"that process no longer runs)"
                )
                self.path.unlink(missing_ok=True)
                continue
            if not holder:
                raise RunDirLocked(
                    f"{self.path}: a lock file that cannot be read; if no trainkit process "
                    f"uses {self.run_dir}, remove it"
                )
            raise RunDirLocked(
                f"{self.run_dir}: in use by another trainkit run ({_describe(holder)}); wait "
                f"for it, or choose another --run-dir (its lock: {self.path})"
            )
        raise RunDirLocked(f"{self.path}: could not take the lock (it changed hands repeatedly)")

    def release(self):
        if self.held:
            self.held = False
            holder = self._read()
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            if self.created:  # a run that failed before writing anything leaves no folder
                try:
                    self.run_dir.rmdir()
                except OSError:
                    pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
