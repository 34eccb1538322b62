"""File source: a local folder where partners (or a transfer tool) drop batch files, such
as an 837 claim batch or an 835 remittance; polling, settling and moving are
engine.connectors.polling's, this module only knows the local file system.

Each file is read whole, up to `max_bytes`; one over MAP_ABOVE is handed over as a
read-only memory map instead, which a streaming codec (X12) reads set by set, so a
100 MB batch never sits in the process's own memory (other codecs are given bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import mmap
import os
import shutil
from pathlib import Path

from engine.connectors.file import make_folders, write_atomically
from engine.connectors.polling import Entry, PollingSource, PollingSourceBase, free_name

MAP_ABOVE = 8 * 1024 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # never read through a planted symlink
_FOLDER_MODE = 0o700  # the files hold PHI
_TRIES = 1000  # names tried beside a taken one before giving up


class FileSourceConfig(PollingSourceBase, tag="file"):
    """A local folder polled for files."""


class LocalFolder:
    """The Folder of a FileSource: blocking calls run in a worker thread."""

    def __init__(self, config: FileSourceConfig) -> None:
        self.config = config
        self.inbox = Path(config.directory)

    async def prepare(self) -> None:
        """Best effort: a folder that cannot be made now is reported by the first move or
        reply that needs it."""
        folders = [self.config.done, self.config.error, self.config.reply_directory]
        for folder in filter(None, folders):
            with contextlib.suppress(OSError):
                await asyncio.to_thread(make_folders, Path(folder), _FOLDER_MODE)

    async def entries(self) -> list[Entry]:
        return await asyncio.to_thread(self._entries)

    def _entries(self) -> list[Entry]:
        found = []
        try:
            with os.scandir(self.inbox) as listing:
                for item in listing:
                    if not item.is_file(follow_symlinks=False):
                        continue  # folders (done, error) and symbolic links are not input
                    st = item.stat(follow_symlinks=False)
                    found.append(Entry(item.name, st.st_size, st.st_mtime))
        except FileNotFoundError:
            return []  # the folder is made by whoever drops files; nothing yet
        return found

    async def read(self, name: str, limit: int) -> bytes:
        return await asyncio.to_thread(self._read, name, limit)

    def _read(self, name: str, limit: int) -> bytes:
        fd = os.open(self.inbox / name, os.O_RDONLY | _NOFOLLOW)
        with open(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if MAP_ABOVE < size <= limit:  # unmapped when the channel lets go of it
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[return-value]
            return fh.read(limit + 1)

    async def move(self, name: str, folder: str) -> str:
        return await asyncio.to_thread(self._move, name, Path(folder))

    def _move(self, name: str, folder: Path) -> str:
        make_folders(folder, _FOLDER_MODE)
        source = self.inbox / name
        for taken in range(_TRIES):
            target = folder / free_name(name, taken)
            try:
                os.link(source, target)  # fails on a taken name, where rename would replace
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                    raise
                if target.exists():  # another file system: copy, then remove
                    continue
                shutil.copy2(source, target)
            os.unlink(source)
            return target.name
        raise FileExistsError(errno.EEXIST, f"{_TRIES} files named like it in {folder}")

    async def write_reply(self, name: str, content: bytes) -> str:
        return await asyncio.to_thread(self._write_reply, name, content)

    def _write_reply(self, name: str, content: bytes) -> str:
        assert self.config.reply_directory is not None
        folder = Path(self.config.reply_directory)
        for taken in range(_TRIES):
            target = folder / free_name(name, taken)
            if not target.exists():
                write_atomically(target, content, 0o600)
                return target.name
        raise FileExistsError(errno.EEXIST, f"{_TRIES} replies named like it in {folder}")

    async def close(self) -> None:
        return None


class FileSource(PollingSource):
    def __init__(self, config: FileSourceConfig) -> None:
        super().__init__(config, LocalFolder(config), "file",
                         f"file:{os.path.abspath(config.directory)}")
