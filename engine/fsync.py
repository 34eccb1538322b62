"""Making files and folder entries durable: a rename or a new file is only on disk once
its folder is synced too (keys, backups and the files they copy depend on it)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
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


@contextlib.contextmanager
def new_folder(target: Path) -> Iterator[Path]:
    """A folder filled under a temporary name beside `target` and renamed to it only
    once whole and durable, so a crash leaves either no folder or a complete one; if the
    filling raises, the partial folder is removed."""
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.mkdir(partial, 0o700)
    try:
        yield partial
        fsync_dir(partial)
        os.rename(partial, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
