"""Making files and folder entries durable: a rename or a new file is only on disk once
its folder is synced too (keys, backups and the files they copy depend on it)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a folder is opened and
    synced like a file on Linux."""
    fsync_file(path)
