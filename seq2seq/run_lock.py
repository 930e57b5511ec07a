"""One writer per run folder: an exclusive OS lock on ``FOLDER/.lock``.

Training, ``--resume``, ``seq2seq.average`` and ``seq2seq.export`` hold ``fcntl.flock`` on
the ``.lock`` file of the folder they write for as long as they write it. The kernel drops
the lock when the process ends, however it ends (a crash, SIGKILL, a lost node), so a lock
is never stale; the file itself stays and only tells the next reader who held it last.
A second writer is refused at once with the holder's PID and host, which the holder wrote
into the file. (On NFS, Linux maps ``flock`` onto NFS byte-range locks, which other hosts
see as well.)

A process that already holds a folder's lock gets it back from ``acquire``; ``release``
drops it. ``new_output`` is the whole life of an output built in place (``average``,
``export``): checked, created and locked, removed again when writing it fails.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seq2seq.runs import RunError

LOCK_NAME = ".lock"


class RunLockError(RunError):
    """Another process is writing this folder."""


@dataclass
class RunLock:
    folder: Path
    descriptor: int


_HELD: dict[Path, RunLock] = {}


def lock_file(folder: str | Path) -> Path:
    return Path(folder) / LOCK_NAME


def _key(folder: Path) -> Path:
    return folder.resolve()


def holder(folder: str | Path) -> str:
    """Who last took the lock, as its file says ("PID 123 on host, training"), or ''."""
    try:
        text = lock_file(folder).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and len(line) < 300
    )
    if not fields.get("pid"):
        return ""
    what = f", {fields['purpose']}" if fields.get("purpose") else ""
    return f"PID {fields['pid']} on {fields.get('host', '?')}{what}"


def is_locked(folder: str | Path) -> bool:
    """Whether another process holds the folder's lock now (never blocks)."""
    path = lock_file(folder)
    if not path.is_file() or _key(Path(folder)) in _HELD:
        return False
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)
    return False


def acquire(folder: str | Path, purpose: str) -> RunLock:
    """Take the exclusive lock of the existing ``folder``, or ``RunLockError`` at once."""
    folder = Path(folder)
    key = _key(folder)
    held = _HELD.get(key)
    if held is not None:
        return held
    path = lock_file(folder)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunError(f"cannot lock {folder}: {path}: {error.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(descriptor)
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunError(f"cannot lock {folder}: {error.strerror}") from None
        who = holder(folder) or "another process"
        raise RunLockError(
            f"{folder} is in use by {who}; wait for it to end, or choose another folder"
        ) from None
    record = f"pid={os.getpid()}\nhost={socket.gethostname()}\npurpose={purpose}\n"
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record.encode("utf-8"), 0)
    except OSError:
        pass  # the lock holds without the note (a full disk, say)
    lock = _HELD[key] = RunLock(folder, descriptor)
    return lock


def release(folder: str | Path, remove: bool = False) -> None:
    """Let go of the lock of ``folder`` taken by this process (no-op if not held);
    ``remove`` deletes the lock file first (a finished export has no use for it)."""
    key = _key(Path(folder))
    held = _HELD.get(key)
    if held is None:
        return
    del _HELD[key]
    if remove:
        lock_file(folder).unlink(missing_ok=True)
    try:
        fcntl.flock(held.descriptor, fcntl.LOCK_UN)
    finally:
        os.close(held.descriptor)


def check_can_create(folder: Path) -> None:
    """``RunError`` now, before any work, when ``folder`` could not be created: the nearest
    existing folder above it is not a folder or not writable (read-only, say)."""
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise RunError(f"cannot create {folder}: {parent} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-check-"):
            pass
    except OSError as error:
        raise RunError(
            f"cannot create {folder}: {parent} is not writable ({error.strerror or error})"
        ) from None


def check_new_folder(folder: str | Path) -> None:
    """``RunError`` when ``folder`` exists (naming its writer when one holds it now) or
    cannot be created."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        check_can_create(folder)
        return
    if folder.is_dir() and is_locked(folder):
        who = holder(folder) or "another process"
        raise RunLockError(
            f"{folder} is being written by {who}; wait for it to end, or choose another folder"
        )
    raise RunError(f"{folder} already exists; choose a new folder or remove it")


def claim_new_folder(folder: str | Path, purpose: str) -> RunLock:
    """Create ``folder`` (it must not exist) and lock it: for outputs built in place.

    Two writers racing for the same new folder: one creates it, the other is told who
    holds it (or that it already exists)."""
    folder = Path(folder)
    check_new_folder(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"cannot create {folder}: {error.strerror or error}") from None
    try:
        folder.mkdir()
    except FileExistsError:
        check_new_folder(folder)
        raise
    except OSError as error:
        raise RunError(f"cannot create {folder}: {error.strerror}") from None
    return acquire(folder, purpose)


def check_output(folder: str | Path, error: type[Exception]) -> None:
    """``check_new_folder`` for a command's output: its ``RunError`` raised as ``error``
    (the command's own error), a folder another process writes as ``RunLockError``."""
    try:
        check_new_folder(folder)
    except RunLockError:
        raise
    except RunError as failure:
        raise error(str(failure)) from None


@contextmanager
def new_output(folder: str | Path, purpose: str, error: type[Exception]) -> Iterator[Path]:
    """Create and lock ``folder`` (``claim_new_folder``) for the ``with`` block that writes
    it; a failure in the block removes the folder (an ``OSError`` becomes ``error`` naming
    it), and the lock and its file go at the end either way. A folder that cannot be
    claimed raises as ``check_output`` does."""
    folder = Path(folder)
    try:
        claim_new_folder(folder, purpose)
    except RunLockError:
        raise
    except RunError as failure:
        raise error(str(failure)) from None
    try:
        yield folder
    except OSError as failure:
        shutil.rmtree(folder, ignore_errors=True)
        raise error(f"cannot write {folder}: {failure.strerror or failure}") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        release(folder, remove=True)
