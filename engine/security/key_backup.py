"""Copies of the key folder, made and put back apart from the data backup: a data backup
holds only sealed content, so whoever finds it without the keys cannot open it.

Files keep mode 0600 and folders 0700 (the key ring refuses keys others can read); a
copy is written under a temporary name, fsynced, then renamed, so a crash leaves either
no copy or a whole one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.errors import ConduitError

AUDIT_KEY = "audit.key"  # every key folder the engine made holds it


def holds_keys(folder: Path) -> bool:
    return (folder / AUDIT_KEY).is_file()


def key_files(folder: Path) -> list[Path]:
    """Every file under the key folder, relative to it (retired keys included)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def copy_folder(source: Path, target: Path) -> list[Path]:
    """Copy the key folder `source` to the new folder `target`, atomically; the files
    copied, relative to it."""
    if target.exists():
        raise ConduitError(f"{target} already exists; keys are copied to a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    files = key_files(source)
    try:
        os.mkdir(partial, 0o700)
        for rel in files:
            _copy_private(source / rel, partial / rel)
        for folder in sorted({partial / rel.parent for rel in files}, reverse=True):
            fsync_dir(folder)
        os.rename(partial, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return files


def conflicts(source: Path, target: Path) -> list[Path]:
    """Files both folders hold with different content (relative paths)."""
    if not target.is_dir():
        return []
    return [rel for rel in key_files(source)
            if (target / rel).is_file() and (target / rel).read_bytes()
            != (source / rel).read_bytes()]


def put_back(source: Path, target: Path) -> list[Path]:
    """Copy into the key folder `target` each key of `source` it lacks (a key it holds
    already is the same, conflicts() having been cleared); the files added."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target, 0o700)
    added = [rel for rel in key_files(source) if not (target / rel).exists()]
    for rel in added:
        final = target / rel
        partial = final.parent / f".{final.name}.partial-{os.getpid()}"
        _copy_private(source / rel, partial)
        os.rename(partial, final)
    for folder in sorted({(target / rel).parent for rel in added}, reverse=True):
        fsync_dir(folder)
    return added


def _copy_private(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(src.read_bytes())
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
