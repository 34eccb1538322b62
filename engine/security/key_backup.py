"""Copies of the key folders, made and put back apart from the data backup: a data backup
holds only sealed content, so whoever finds it without the keys cannot open it.

A copy is one folder with a subfolder per key folder of the engine: `keys/` (the key
files, retired ones included) and, with the file-based KMS, `kms/` (its master key and
wrapped data keys). Files keep mode 0600 and folders 0700 (the key providers refuse keys
others can read); a copy is written under a temporary name, fsynced, then renamed, so a
crash leaves either no copy or a whole one.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ConduitError
from engine.fsync import fsync_dir, new_folder


def key_files(folder: Path) -> list[Path]:
    """Every file under a folder, relative to it."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def copy_folders(sources: dict[str, Path], target: Path) -> int:
    """Copy each key folder of `sources` to `target`/<name>, `target` being a new
    folder; the number of files copied."""
    if target.exists():
        raise ConduitError(f"{target} already exists; keys are copied to a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    copied = 0
    with new_folder(target) as partial:
        for name, source in sources.items():
            copied += len(put_back(source, partial / name))
    return copied


def conflicts(copy: dict[str, Path], targets: dict[str, Path]) -> list[Path]:
    """Files a copy and the engine's key folders both hold, with different content."""
    clash = []
    for name, source in copy.items():
        target = targets.get(name)
        if target is None:
            continue
        clash += [target / rel for rel in key_files(source)
                  if (target / rel).is_file()
                  and (target / rel).read_bytes() != (source / rel).read_bytes()]
    return clash


def put_back(source: Path, target: Path) -> list[Path]:
    """Copy into the key folder `target` each file of `source` it lacks (a file it holds
    already is the same, conflicts() having been cleared); the files added."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target, 0o700)
    added = [rel for rel in key_files(source) if not (target / rel).exists()]
    for rel in added:
        final = target / rel
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = final.parent / f".{final.name}.partial-{os.getpid()}"
        _copy_private(source / rel, partial)
        os.rename(partial, final)
    for folder in sorted({(target / rel).parent for rel in added} | {target}, reverse=True):
        fsync_dir(folder)
    return added


def _copy_private(src: Path, dst: Path) -> None:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(src.read_bytes())
        fh.flush()
        os.fsync(fh.fileno())
