"""SFTP source: a folder on a partner's SSH server polled for batch files (835
remittances, 999s, 277CAs). Settling, the channel's answer and the moves to done and
error (renames on the server, after the commit) are engine.connectors.polling's; this
module only speaks SFTP, through the session engine.connectors.sftp keeps open.
"""

from __future__ import annotations

import posixpath
from functools import partial
from typing import Annotated, Any

from msgspec import Meta

from engine.config.types import Duration
from engine.connectors.polling import Entry, PollingSource, PollingSourceBase, free_name
from engine.connectors.sftp import (
    ConnectTimeout,
    Host,
    Insecure,
    KnownHosts,
    Passphrase,
    Port,
    PrivateKey,
    SftpSession,
    Username,
    check_trust,
    server_address,
    unchecked,
    write_whole,
)

_BLOCK = 256 * 1024  # read in blocks, each bounded by the timeout: slow is fine, stuck is not
_TRIES = 1000


class SftpSourceConfig(PollingSourceBase, tag="sftp", kw_only=True):
    host: Host
    username: Username
    private_key: PrivateKey
    port: Port = 22
    passphrase: Passphrase = None
    known_hosts: KnownHosts = None
    insecure: Insecure = False
    connect_timeout: ConnectTimeout = Duration(10.0)
    timeout: Annotated[Duration, Meta(description="limit for one listing, move or block "
                                                  "read on the server")] = Duration(30.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_trust(self)


class SftpFolder:
    """The Folder of an SftpSource: paths are the server's (POSIX)."""

    def __init__(self, config: SftpSourceConfig, session: SftpSession) -> None:
        self.config = config
        self.session = session

    def _path(self, name: str) -> str:
        return posixpath.join(self.config.directory, name)

    async def prepare(self) -> None:
        folders = [f for f in (self.config.done, self.config.error,
                               self.config.reply_directory) if f]

        async def make(sftp: Any) -> None:
            for folder in folders:
                await sftp.makedirs(folder, exist_ok=True)
        await self.session.run(make)

    async def entries(self) -> list[Entry]:
        async def listing(sftp: Any) -> list[Entry]:
            return [Entry(item.filename, item.attrs.size or 0, float(item.attrs.mtime or 0))
                    for item in await sftp.readdir(self.config.directory)
                    if item.attrs.type == _REGULAR]
        return await self.session.run(listing)

    async def read(self, name: str, limit: int) -> bytes:
        fh = await self.session.run(partial(_open, path=self._path(name)))
        try:
            blocks: list[bytes] = []
            read = 0
            while read <= limit:
                block = await self.session.run(
                    partial(_block, fh=fh, size=min(_BLOCK, limit + 1 - read), at=read))
                if not block:
                    break
                blocks.append(block)
                read += len(block)
            return b"".join(blocks)
        finally:
            await self.session.run(partial(_close, fh=fh))

    async def move(self, name: str, folder: str) -> str:
        async def rename(sftp: Any) -> str:
            for taken in range(_TRIES):
                target = posixpath.join(folder, free_name(name, taken))
                if not await sftp.exists(target):  # plain SFTP rename never replaces
                    await sftp.rename(self._path(name), target)
                    return posixpath.basename(target)
            raise FileExistsError(17, f"{_TRIES} files named like it in {folder}")
        return await self.session.run(rename)

    async def write_reply(self, name: str, content: bytes) -> str:
        folder = self.config.reply_directory
        assert folder is not None

        async def write(sftp: Any) -> str:
            for taken in range(_TRIES):
                candidate = free_name(name, taken)
                if not await sftp.exists(posixpath.join(folder, candidate)):
                    await write_whole(sftp, folder, candidate, content)
                    return candidate
            raise FileExistsError(17, f"{_TRIES} replies named like it in {folder}")
        return await self.session.run(write)

    async def close(self) -> None:
        await self.session.close()


_REGULAR = 1  # SFTP's FILEXFER_TYPE_REGULAR: no folders, no symbolic links


async def _open(sftp: Any, path: str) -> Any:
    return await sftp.open(path, "rb")


async def _block(sftp: Any, fh: Any, size: int, at: int) -> bytes:
    """One block, so the time limit bounds each step of a read, not the whole file."""
    return await fh.read(size, at)


async def _close(sftp: Any, fh: Any) -> None:
    await fh.close()


class SftpSource(PollingSource):
    def __init__(self, config: SftpSourceConfig) -> None:
        session = SftpSession(config, config.timeout)
        super().__init__(config, SftpFolder(config, session), "sftp",
                         f"{server_address(config)}{posixpath.join('/', config.directory)}")
        self._insecure = unchecked(config)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "insecure": self._insecure}
