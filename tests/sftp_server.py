"""A real SFTP server on loopback for the tests (asyncssh, the library the engine's SFTP
connectors use as clients): files served from a folder, key authentication only, a
known_hosts file naming its host key, so clients are tested the way they run."""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from engine.connectors.sftp import load_asyncssh

asyncssh = load_asyncssh()  # without the DSA deprecation warnings it loads with
USER = "clearinghouse"


class RecordingSftp(asyncssh.SFTPServer):
    """The library's own file server, noting the opens and renames clients ask for (so a
    test sees that a file was written under another name first)."""

    def __init__(self, chan: Any, *, root: Path, ops: list[tuple[str, ...]]) -> None:
        super().__init__(chan, chroot=str(root).encode())
        self._ops = ops

    def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
        self._ops.append(("open", path.decode()))
        return super().open(path, pflags, attrs)

    def rename(self, oldpath: bytes, newpath: bytes) -> Any:
        self._ops.append(("rename", oldpath.decode(), newpath.decode()))
        return super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> Any:
        self._ops.append(("rename", oldpath.decode(), newpath.decode()))
        return super().posix_rename(oldpath, newpath)


class _Tracked(asyncssh.SSHServer):
    """Keeps the server's connections, so stopping the server drops its clients too."""

    def __init__(self, live: set[Any]) -> None:
        self._live = live
        self._conn: Any = None

    def connection_made(self, conn: Any) -> None:
        self._conn = conn
        self._live.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self._conn)


def write_key(path: Path, key: asyncssh.SSHKey) -> Path:
    path.write_bytes(key.export_private_key())
    os.chmod(path, 0o600)
    return path


class SftpServer:
    """Serves `root` over SFTP on 127.0.0.1 to a client holding `client_key`."""

    def __init__(self, root: Path, keys: Path) -> None:
        self.root = root
        self.keys = keys
        keys.mkdir(parents=True, exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = write_key(keys / "client_ed25519",
                                    asyncssh.generate_private_key("ssh-ed25519"))
        self.stranger_key = write_key(keys / "stranger_ed25519",
                                      asyncssh.generate_private_key("ssh-ed25519"))
        self.port = 0
        self.ops: list[tuple[str, ...]] = []
        self.live: set[Any] = set()
        self._server: Any = None

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file that trusts this server's host key on its port."""
        path = self.keys / "known_hosts"
        path.write_text(f"[127.0.0.1]:{self.port} "
                        f"{self.host_key.export_public_key().decode()}")
        return path

    def wrong_known_hosts(self) -> Path:
        """A known_hosts file naming another key for this server: a man in the middle."""
        other = asyncssh.generate_private_key("ssh-ed25519")
        path = self.keys / "known_hosts_wrong"
        path.write_text(f"[127.0.0.1]:{self.port} {other.export_public_key().decode()}")
        return path

    async def start(self) -> SftpServer:
        authorized = asyncssh.import_authorized_keys(
            asyncssh.read_private_key(self.client_key).export_public_key().decode())
        self._server = await asyncssh.listen(
            "127.0.0.1", self.port, server_factory=lambda: _Tracked(self.live),
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized, password_auth=False, kbdint_auth=False,
            sftp_factory=functools.partial(RecordingSftp, root=self.root, ops=self.ops),
            allow_scp=False, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Down: no more connections, and those open are dropped."""
        for conn in list(self.live):
            conn.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


class ThreadedSftpServer:
    """An SftpServer on an event loop of its own in a daemon thread, for tests whose set-up
    cannot await; it lives as long as the test process."""

    def __init__(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="conduit-sftp-"))
        self.server = SftpServer(base / "root", base / "keys")
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True,
                         name="sftp-server").start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)


@functools.cache
def shared_server() -> SftpServer:
    return ThreadedSftpServer().server
