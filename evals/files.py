"""Writing a file that another process may be reading, or writing, at the same moment.

The systems keep caches that several processes share: two benchmark runs, or a benchmark and a
CLI command, pointed at one ``results/cache``. Each entry is written the usual atomic way: write a
temporary file beside it, then rename it over the entry, so a reader sees the old file or the new
one, never half of one. The temporary name must be unique to the writer. With a fixed one
(``entry.tmp``), two processes filling the same entry write into the *same* file: one renames the
other's half-written file into place, and the second rename finds nothing to move. A writer
killed mid-save leaves its uniquely named file behind; :func:`remove_abandoned_siblings` clears
those whose process has exited.

>>> from pathlib import Path
>>> entry = Path("cache/x.npy")
>>> a, b = temporary_sibling(entry, ".tmp.npy"), temporary_sibling(entry, ".tmp.npy")
>>> a != b and a.parent == entry.parent and a.name.endswith(".tmp.npy")
True
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["remove_abandoned_siblings", "temporary_sibling", "written_atomically"]


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
    temporary name is gone afterwards, so a failed write leaves ``path`` as it was.
    """
    tmp = temporary_sibling(path, suffix)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_abandoned_siblings(path: Path) -> list[Path]:
    """Delete the temporary siblings of ``path`` whose writer has exited; return what was deleted.

    A writer killed mid-save (a power cut, a ``kill -9``) leaves its temporary file or folder
    behind, and with names unique to each writer no later save reuses it: a fine-tune's is
    0.1-0.5 GB. A sibling whose process id names a live process is left alone (it may be
    writing now; a recycled id only delays the clean-up).
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: checks the process exists, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True
