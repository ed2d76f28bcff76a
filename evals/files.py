"""Writing a file that another process may be reading, or writing, at the same moment.

The systems keep caches that several processes share: two benchmark runs, or a benchmark and a
CLI command, pointed at one ``results/cache``. Each entry is written the usual atomic way: write a
temporary file beside it, then rename it over the entry, so a reader sees the old file or the new
one, never half of one. The temporary name must be unique to the writer. With a fixed one
(``entry.tmp``), two processes filling the same entry write into the *same* file: one renames the
other's half-written file into place, and the second rename finds nothing to move.

>>> from pathlib import Path
>>> entry = Path("cache/x.npy")
>>> a, b = temporary_sibling(entry, ".tmp.npy"), temporary_sibling(entry, ".tmp.npy")
>>> a != b and a.parent == entry.parent and a.name.endswith(".tmp.npy")
True
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["temporary_sibling"]


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A name beside ``path`` that no other writer uses: process id, a random part, ``suffix``.

    Beside, not in a temporary folder, so that the final rename stays on one file system (where it
    is atomic). ``suffix`` keeps an extension that a writer insists on (``np.save`` appends
    ``.npy`` to a name without it).
    """
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{suffix}")
