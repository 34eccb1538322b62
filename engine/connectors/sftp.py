"""SFTP, for the payers and clearinghouses that exchange batch files on an SSH server:
the connection both SFTP connectors share, and the destination.

SSH is asyncssh's (we do not write SSH). The server's host key is checked against a
known_hosts file unless the connector says `insecure: true`; a refused login, an
untrusted host key and a server that is down each become a Retry (or a source's log
line) with a reason naming what to fix, never the content. Every network step is
bounded: connecting and logging in by `connect_timeout`, each file operation by the
connector's `timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import re
import warnings
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from cryptography.utils import CryptographyDeprecationWarning
from msgspec import Meta

from engine.config.base import DestinationBase
from engine.config.types import Duration
from engine.connectors.base import DestinationContext
from engine.connectors.file import file_name
from engine.connectors.polling import Unavailable
from engine.message import Delivery, Outbound, Retry, Sent

log = logging.getLogger("conduit.sftp")
T = TypeVar("T")

# The settings every SFTP connector takes (msgspec structs have one base each, so the
# source and the destination declare them alike from these).
Host = Annotated[str, Meta(min_length=1, description="the SFTP server's host name or address")]
Port = Annotated[int, Meta(ge=1, le=65535, description="its SSH port")]
Username = Annotated[str, Meta(min_length=1, description="the account to log in as")]
PrivateKey = Annotated[str, Meta(min_length=1, description="path to the private key file "
                                                           "to log in with (OpenSSH or PEM)")]
Passphrase = Annotated[str | None, Meta(description="the private key's passphrase, if it has "
                                                    "one; give it as ${VARIABLE}")]
KnownHosts = Annotated[str | None, Meta(description="path to a known_hosts file that holds "
                                                    "the server's host key; required unless "
                                                    "insecure: true")]
Insecure = Annotated[bool, Meta(description="connect without checking the server's host "
                                            "key, so anyone in the path could pose as the "
                                            "server and read the files (logged, and shown "
                                            "on the status page)")]
ConnectTimeout = Annotated[Duration, Meta(description="limit for connecting and logging in")]


class SftpSettings(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def private_key(self) -> str: ...
    @property
    def passphrase(self) -> str | None: ...
    @property
    def known_hosts(self) -> str | None: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def connect_timeout(self) -> float: ...


def check_trust(settings: SftpSettings) -> None:
    """The config rule: the server's key is checked, or the risk is said out loud."""
    if not settings.known_hosts and not settings.insecure:
        raise ValueError("give known_hosts (a file with the server's host key, as "
                         "ssh-keyscan prints it), or set `insecure: true` to connect without "
                         "checking who answers")


def server_address(settings: SftpSettings) -> str:
    return f"sftp://{settings.username}@{settings.host}:{settings.port}"


def unchecked(settings: SftpSettings) -> bool:
    """Whether this connector trusts any host key (insecure: true, no known_hosts)."""
    return settings.insecure and not settings.known_hosts


class SftpSession:
    """One SSH connection and its SFTP channel, opened when first needed and opened again
    after a failure; concurrent users wait for one connection attempt."""

    def __init__(self, settings: SftpSettings, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout
        self.address = server_address(settings)
        self._conn: Any = None
        self._sftp: Any = None
        self._lock = asyncio.Lock()
        self._warned = False

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def client(self) -> Any:
        """The open SFTP client; Unavailable with the reason when the server cannot be
        reached or refuses us."""
        async with self._lock:
            if self._sftp is None:
                try:
                    await asyncio.wait_for(self._connect(), self.settings.connect_timeout)
                except Exception as exc:
                    await self.close()
                    raise Unavailable(self.reason(exc)) from None
            return self._sftp

    def warn_if_unchecked(self) -> None:
        if unchecked(self.settings) and not self._warned:
            log.warning("sftp %s: host key NOT checked (insecure: true): anyone in the path "
                        "could pose as the server", self.address)
            self._warned = True

    async def _connect(self) -> None:
        s, ssh = self.settings, load_asyncssh()
        key = ssh.read_private_key(s.private_key, s.passphrase)
        self.warn_if_unchecked()
        self._conn = await ssh.connect(
            s.host, s.port, username=s.username, client_keys=[key],
            known_hosts=s.known_hosts or None, preferred_auth="publickey", agent_path=None,
            config=[], connect_timeout=s.connect_timeout, login_timeout=s.connect_timeout,
            keepalive_interval=30)
        self._sftp = await self._conn.start_sftp_client()

    async def run(self, step: Callable[[Any], Awaitable[T]], timeout: float | None = None) -> T:
        """One file operation on the server, bounded: a file the server refuses is an
        OSError (FileNotFoundError when missing), a lost connection Unavailable."""
        sftp, ssh = await self.client(), load_asyncssh()
        try:
            return await asyncio.wait_for(step(sftp), timeout or self.timeout)
        except ssh.SFTPNoSuchFile:
            raise FileNotFoundError(2, "no such file") from None
        except (ssh.SFTPConnectionLost, ssh.SFTPNoConnection) as exc:
            await self.close()
            raise Unavailable(self.reason(exc)) from None
        except ssh.SFTPError as exc:
            raise OSError(0, _words(type(exc).__name__.removeprefix("SFTP"))) from None
        except (ssh.Error, OSError, TimeoutError) as exc:
            await self.close()
            raise Unavailable(self.reason(exc)) from None

    def reason(self, exc: BaseException) -> str:
        """What went wrong, for logs and Retry reasons: names what ops should fix, and
        never quotes the server (whose words we do not control)."""
        s, ssh = self.settings, load_asyncssh()
        if isinstance(exc, ssh.PermissionDenied):
            return (f"authentication failed as {s.username} on {self.where}: the server "
                    "refused the key; ops must fix private_key or the account")
        if isinstance(exc, ssh.HostKeyNotVerifiable):
            return (f"host key of {self.where} is not the one in known_hosts "
                    f"({s.known_hosts}): refusing to connect; check the server's key")
        if isinstance(exc, ssh.KeyImportError | ssh.KeyEncryptionError):
            return f"private_key {s.private_key} cannot be read (wrong format or passphrase)"
        if isinstance(exc, TimeoutError):
            return f"no answer from {self.where} within the time limit"
        if isinstance(exc, FileNotFoundError | PermissionError) and exc.filename:
            return f"cannot read {exc.filename}: {exc.strerror}"
        if isinstance(exc, OSError):
            return f"cannot connect to {self.where}: {exc.strerror or type(exc).__name__}"
        return f"connection to {self.where} failed ({_words(type(exc).__name__)})"

    async def close(self) -> None:
        sftp, conn, self._sftp, self._conn = self._sftp, self._conn, None, None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)


def load_asyncssh() -> Any:
    """asyncssh, loaded at the first connection: it takes a tenth of a second, which
    every `conduit` command and engine start would pay for a connector few channels use."""
    with warnings.catch_warnings():  # asyncssh still loads DSA support, which nobody here uses
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        import asyncssh
    return asyncssh


def _words(name: str) -> str:
    """PermissionDenied -> permission denied."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()


async def write_whole(sftp: Any, folder: str, name: str, content: bytes) -> None:
    """Write `<name>.part`, then rename it to `name` (replacing an older one), so the
    partner never picks up half a file."""
    target = posixpath.join(folder, name)
    part, ssh = target + ".part", load_asyncssh()
    async with sftp.open(part, "wb", ssh.SFTPAttrs(permissions=0o600)) as fh:
        await fh.write(content)
    try:
        await sftp.posix_rename(part, target)  # replaces at once, where the server can
    except ssh.SFTPOpUnsupported:
        if await sftp.exists(target):  # plain SFTP rename never replaces
            await sftp.remove(target)
        await sftp.rename(part, target)


class SftpDestinationConfig(DestinationBase, tag="sftp"):
    host: Host
    directory: Annotated[str, Meta(description="folder on the server the files go to; made "
                                               "if missing")]
    username: Username
    private_key: PrivateKey
    port: Port = 22
    passphrase: Passphrase = None
    known_hosts: KnownHosts = None
    insecure: Insecure = False
    connect_timeout: ConnectTimeout = Duration(10.0)
    filename: Annotated[
        str, Meta(description="name of each file; {message_id}, {control_id}, {channel}, "
                              "{destination} and {ext} are filled in")
    ] = "{message_id}{ext}"

    def __post_init__(self) -> None:
        check_trust(self)


class SftpDestination:
    """Writes each message as one file on the server, through a kept-open connection."""

    def __init__(self, config: SftpDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._context = context
        self._session = SftpSession(config, config.timeout)
        self._folder_made = False

    @property
    def address(self) -> str:
        return f"{self._session.address}{posixpath.join('/', self.config.directory)}"

    async def open(self) -> None:
        """Connect lazily on first send, so a server that is down does not stop the
        engine; say at start when the server's key goes unchecked."""
        self._session.warn_if_unchecked()

    async def send(self, outbound: Outbound) -> Delivery:
        name = file_name(self.config.filename, outbound, self._context)
        folder = self.config.directory
        try:
            if not self._folder_made:
                await self._session.run(lambda sftp: sftp.makedirs(folder, exist_ok=True))
                self._folder_made = True
            await self._session.run(lambda sftp: write_whole(sftp, folder, name,
                                                             outbound.content))
        except Unavailable as exc:
            self._folder_made = False
            return Retry(str(exc))
        except OSError as exc:
            return Retry(f"cannot write {name} on {self._session.where}: "
                         f"{exc.strerror or type(exc).__name__}")
        return Sent("written")

    async def healthcheck(self) -> str | None:
        try:
            await self._session.run(lambda sftp: sftp.stat(self.config.directory))
        except Unavailable as exc:
            return str(exc)
        except FileNotFoundError:
            return None  # made by the first send
        except OSError as exc:
            return f"{self.config.directory} on {self._session.where}: {exc.strerror}"
        return None

    async def close(self) -> None:
        self._folder_made = False
        await self._session.close()

    def describe(self) -> dict[str, object]:
        return {"address": self.address, "insecure": unchecked(self.config)}
