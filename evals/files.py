"""Writing a file that another process may be reading, or writing, at the same moment.

The systems keep caches that several processes share: two benchmark runs, or a benchmark and a
CLI command, pointed at one ``results/cache``. Each entry is written the usual atomic way: write a
temporary file beside it, then rename it over the entry, so a reader sees the old file or the new
one, never half of one. The temporary name must be unique to the writer. With a fixed one
(``entry.tmp``), two processes filling the same entry write into the *same* file: one renames the
other's half-written file into place, and the second rename finds nothing to move. A writer
killed mid-save leaves its uniquely named file behind; :func:`remove_abandoned_siblings` clears
those whose process has exited.

An atomic write keeps each file whole, not an update whole: two processes that each load a
saved index or model, change it and save it lose the first one's change. Such a
read-modify-write holds :func:`exclusive_lock` from load to save.

>>> from pathlib import Path
>>> entry = Path("cache/x.npy")
>>> a, b = temporary_sibling(entry, ".tmp.npy"), temporary_sibling(entry, ".tmp.npy")
>>> a != b and a.parent == entry.parent and a.name.endswith(".tmp.npy")
True
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the locks use the filelock package there
    fcntl = None

log = logging.getLogger(__name__)

__all__ = [
    "exclusive_lock",
    "remove_abandoned_siblings",
    "shared_lock",
    "temporary_sibling",
    "writable_folder",
    "written_atomically",
]


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A name beside ``path`` that no other writer uses: process id, a random part, ``suffix``.

    Beside, not in a temporary folder, so that the final rename stays on one file system (where it
    is atomic). ``suffix`` keeps an extension that a writer insists on (``np.save`` appends
    ``.npy`` to a name without it).
    """
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{suffix}")


@contextmanager
def written_atomically(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield this writer's own temporary name for ``path``; write the file there.

    When the block ends normally the file replaces ``path`` in one rename; however it ends, the
    temporary name is gone afterwards, so a failed write leaves ``path`` as it was. A writer
    killed mid-write cannot remove its file: the next write of ``path`` does, once that
    writer's process has exited (:func:`remove_abandoned_siblings`).
    """
    try:
        remove_abandoned_siblings(path)
    except OSError as exc:  # a sibling we may not delete: it costs disk, never this write
        log.warning("could not remove files abandoned beside %s: %s", path, exc)
    tmp = temporary_sibling(path, suffix)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def writable_folder(path: Path) -> Path:
    """Create folder ``path`` (and its parents) and prove a file can be written in it; return it.

    For a command that saves its work at the end (an index, a model, a record): called before
    the minutes of work, it turns "the save failed after everything was computed" into an error at
    once. Checking permissions instead (``os.access``) answers wrongly for root, on read-only
    mounts and on ``/sys``-like file systems, so a probe file is written and deleted. Raises the
    ``OSError`` (``strerror`` says why); each system wraps it in its own error.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)  # FileExistsError / NotADirectoryError for a file
    probe = temporary_sibling(folder / ".write-probe")
    probe.write_bytes(b"")
    probe.unlink()
    return folder


def remove_abandoned_siblings(path: Path) -> list[Path]:
    """Delete the temporary siblings of ``path`` whose writer has exited; return what was deleted.

    A writer killed mid-save (a power cut, a ``kill -9``) leaves its temporary file or folder
    behind, and with names unique to each writer no later save reuses it: a fine-tune's is
    0.1-0.5 GB. A sibling whose process id names a live process is left alone (it may be
    writing now; a recycled id only delays the clean-up). A process id is this machine's: two
    machines writing one cache folder on a network file system would take each other's live
    writers for dead, so such a folder is written from one machine at a time. On Windows nothing
    is deleted: its ``os.kill(pid, 0)`` does not test a process, it terminates it.
    """
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)\.[0-9a-f]{12}\..+")
    removed = []
    for sibling in path.parent.glob(f"{glob.escape(path.name)}.*"):
        match = pattern.fullmatch(sibling.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        removed.append(sibling)
    return removed


# Windows' os.kill(pid, 0) calls TerminateProcess(pid): there every writer is taken as alive.
_CAN_PROBE_PROCESSES = os.name != "nt"


def _alive(pid: int) -> bool:
    if not _CAN_PROBE_PROCESSES:
        return True
    try:
        os.kill(pid, 0)  # signal 0: checks the process exists, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


@contextmanager
def exclusive_lock(lock_file: Path, waiting_for: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created empty if missing), waiting for it.

    For a read-modify-write of files that another process may change too: a saved index or
    model. Each call opens its own file description, so the lock also separates threads of one
    process; it is re-entrant within a thread (a nested ``flock`` on a new description would
    wait for itself forever), and a lock is known by its file's device and inode, so two
    spellings of one path (``sub/../x.lock``, a symlinked folder) are one lock. The lock is
    advisory (it binds the writers that take it, not ``rm``), is released by the operating
    system if the holder dies, and on network file systems is only as good as the server's lock
    support. Delete the lock file only when no one can be holding it. Coroutines of one thread
    share the lock: it does not separate two asyncio tasks. ``waiting_for`` completes the INFO
    line logged while another holder is waited for ("waiting for ...").

    On POSIX it is ``flock``. Windows has no ``flock``; there the lock is the ``filelock``
    package's (``msvcrt.locking`` on the file), with the same rules. The tests run that path on
    Linux too, where ``filelock`` uses ``flock`` itself.
    """
    with _file_lock(lock_file, waiting_for, shared=False):
        yield


@contextmanager
def shared_lock(lock_file: Path, waiting_for: str) -> Iterator[None]:
    """Hold a shared lock on ``lock_file``: many readers at once, none while a writer holds
    :func:`exclusive_lock` on the same file. For a read that must not see a write half done
    (a log another process appends to). Re-entrant within a thread like the exclusive lock, and
    a thread that holds either lock may take the shared one again; a thread that holds only the
    shared lock may not take the exclusive one (``RuntimeError``: the upgrade would deadlock two
    readers that both tried it). On Windows it is exclusive: readers take turns.
    """
    with _file_lock(lock_file, waiting_for, shared=True):
        yield


@contextmanager
def _file_lock(lock_file: Path, waiting_for: str, *, shared: bool) -> Iterator[None]:
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    held = _held_locks.__dict__.setdefault("files", {})  # (device, inode) -> "shared"/"exclusive"
    with open(lock_file, "a") as handle:
        stat = os.fstat(handle.fileno())
        key = (stat.st_dev, stat.st_ino)
        if key in held:  # this thread holds it already (closing this handle does not free it)
            if not shared and held[key] == "shared":
                raise RuntimeError(
                    f"this thread holds a shared lock on {lock_file} and asked for an exclusive "
                    "one; release the shared lock first"
                )
            yield
            return
        if fcntl is None:
            handle.close()  # filelock opens the file itself (and on Windows deletes it on release)
        with _os_lock(handle, lock_file, waiting_for, shared=shared):
            held[key] = "shared" if shared else "exclusive"
            try:
                yield
            finally:
                del held[key]


@contextmanager
def _os_lock(handle, lock_file: Path, waiting_for: str, *, shared: bool) -> Iterator[None]:
    """The operating system's lock on the open ``handle`` (POSIX ``flock``), or ``filelock``'s
    on ``lock_file`` where there is no ``flock``."""
    if fcntl is None:
        import filelock  # imported only where it is used: Windows

        lock = filelock.FileLock(str(lock_file))  # a new lock object per call: separates threads
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            log.info("waiting for %s", waiting_for)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("waiting for %s", waiting_for)
        fcntl.flock(handle.fileno(), mode)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_held_locks = threading.local()  # the lock files this thread holds, by (device, inode)
