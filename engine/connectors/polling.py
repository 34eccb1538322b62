"""Folder polling, for the sources whose partners drop files (a local folder, an SFTP
server): which files are ready, and what becomes of each once the channel has answered.

A file is read only once it has settled (its size and modification time unchanged for
`settle` seconds, as this source saw them) and never while it looks like a transfer in
progress (hidden, `.part`, `.tmp`). Each file is handed to `deliver`, which returns only
after the durable commit; then the channel's answer (an X12 999, an HL7 ACK) is written
to the reply folder and the file moved to `done` (taken on) or `error` (refused, or not
taken on). Nothing is deleted. A file whose move fails is remembered and not delivered
again; only the move is tried again. A file left in the folder by a crash between the
commit and the move is delivered again at the next start, where the channel's duplicate
check knows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import posixpath
from typing import Annotated, NamedTuple, Protocol

from msgspec import Meta

from engine.config.base import SourceBase
from engine.config.types import ByteSize, Duration
from engine.connectors.base import Deliver
from engine.message import MessageStatus, Receipt, SourceMeta

log = logging.getLogger("conduit.polling")

_IN_TRANSFER = (".part", ".tmp", ".filepart", ".partial")
_TAKEN = {MessageStatus.ACCEPTED, MessageStatus.FILTERED, MessageStatus.DUPLICATE}
REPLY_SUFFIX = ".ack"


class Entry(NamedTuple):
    """A regular file in the polled folder, as listed."""

    name: str
    size: int
    mtime: float


class Unavailable(Exception):
    """The folder cannot be reached now (server down, refused login); the reason is
    PHI-free and says what ops should look at."""


class Folder(Protocol):
    """Where the files are: a local folder or a folder on an SFTP server."""

    async def prepare(self) -> None:
        """Make the done, error and reply folders when missing."""
        ...

    async def entries(self) -> list[Entry]:
        """The regular files of the polled folder (no folders, no symbolic links)."""
        ...

    async def read(self, name: str, limit: int) -> bytes:
        """The file's bytes, at most limit + 1 of them; FileNotFoundError when gone."""
        ...

    async def move(self, name: str, folder: str) -> str:
        """Move the file into `folder` under its name, or a free name beside it when taken
        (claims.837 -> claims-2.837); the name it got."""
        ...

    async def write_reply(self, name: str, content: bytes) -> str:
        """Write the reply so a reader sees it whole or not at all; the name it got."""
        ...

    async def close(self) -> None: ...


class PollingSourceBase(SourceBase):
    """The settings every polling source shares."""

    directory: Annotated[str, Meta(description="folder polled for incoming files")]
    pattern: Annotated[
        str, Meta(description="glob the file names must match, such as *.837; hidden "
                              "names and .part/.tmp files are never read")
    ] = "*"
    poll_interval: Annotated[Duration, Meta(description="time between two looks at the "
                                                        "folder")] = Duration(5.0)
    settle: Annotated[
        Duration, Meta(description="a file is read once its size and time have not changed "
                                   "for this long, so half-written files are left alone")
    ] = Duration(2.0)
    done_directory: Annotated[
        str | None, Meta(description="where files go once taken on; default <directory>/done")
    ] = None
    error_directory: Annotated[
        str | None, Meta(description="where refused or unreadable files go; default "
                                     "<directory>/error")
    ] = None
    reply_directory: Annotated[
        str | None, Meta(description="where the channel's answer to each file (an X12 999 "
                                     "or TA1, an HL7 ACK) is written as <file name>.ack; "
                                     "none: no answer is written")
    ] = None
    max_bytes: Annotated[
        ByteSize, Meta(description="larger files are not read: they go to the error "
                                   "folder with a log line")
    ] = ByteSize(200 * 1024 * 1024)

    def __post_init__(self) -> None:
        inbox = posixpath.normpath(self.directory)
        for setting in ("done_directory", "error_directory", "reply_directory"):
            value = getattr(self, setting)
            if value is not None and posixpath.normpath(value) == inbox:
                raise ValueError(f"{setting} must not be the polled directory itself, or "
                                 "its files would be read again")

    @property
    def done(self) -> str:
        return self.done_directory or posixpath.join(self.directory, "done")

    @property
    def error(self) -> str:
        return self.error_directory or posixpath.join(self.directory, "error")


def wanted(name: str, pattern: str) -> bool:
    """A name worth looking at: matches the pattern and is not a transfer in progress."""
    lowered = name.lower()
    return (not name.startswith(".") and not lowered.endswith(_IN_TRANSFER)
            and fnmatch.fnmatchcase(name, pattern))


def free_name(name: str, taken: int) -> str:
    """The `taken`-th alternative to a name already used: claims.837 -> claims-2.837."""
    if taken == 0:
        return name
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    return f"{stem}-{taken + 1}{dot}{ext}"


class PollingSource:
    """Polls a Folder and hands each settled file to the channel, one at a time, oldest
    first, so files are taken on in the order they came."""

    def __init__(self, config: PollingSourceBase, folder: Folder, transport: str,
                 address: str) -> None:
        self.config = config
        self.folder = folder
        self.transport = transport
        self.address = address
        self._deliver: Deliver | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._seen: dict[str, tuple[tuple[int, float], float]] = {}  # name -> (sig, since)
        self._unmoved: dict[str, tuple[tuple[int, float], str]] = {}  # name -> (sig, folder)
        self._problem: str | None = None
        self._prepared = False
        self._in_flight = False  # from handing a file over until it is moved
        self.taken = 0
        self.refused = 0

    def resources(self) -> list[str]:
        """The folder, so validation catches two channels polling one folder."""
        return [self.address]

    async def start(self, deliver: Deliver) -> None:
        """Begin polling; returns at once (an unreachable folder is retried each poll)."""
        self._deliver = deliver
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"poll {self.address}")
        log.info("%s source polling %s", self.transport, self.address)

    async def stop(self) -> None:
        """Finish the file in hand (its commit, reply and move), then stop looking; a
        listing or a connection attempt under way is cut short."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            if not self._in_flight:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.folder.close()

    def describe(self) -> dict[str, object]:
        return {"address": self.address, "taken": self.taken, "refused": self.refused,
                "waiting": len(self._seen), "unmoved": len(self._unmoved),
                "problem": self._problem}

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.poll()
                self._problem = None
            except (Unavailable, OSError) as exc:
                problem = str(exc) if isinstance(exc, Unavailable) else \
                    f"cannot use the folder: {_reason(exc)}"
                if problem != self._problem:
                    log.warning("%s source %s: %s", self.transport, self.address, problem)
                self._problem = problem
                self._prepared = False
            except Exception as exc:  # a bug here must not stop the polling for good
                problem = f"polling failed ({type(exc).__name__})"
                if problem != self._problem:
                    log.error("%s source %s: %s", self.transport, self.address, problem)
                self._problem = problem
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.poll_interval)

    async def poll(self) -> None:
        """One look at the folder: take the files that have settled."""
        if not self._prepared:
            await self.folder.prepare()
            self._prepared = True
        now = asyncio.get_running_loop().time()
        listed = [e for e in await self.folder.entries() if wanted(e.name, self.config.pattern)]
        names = {e.name for e in listed}
        for gone in set(self._seen) - names:
            del self._seen[gone]
        for gone in set(self._unmoved) - names:
            del self._unmoved[gone]
        ready = []
        for entry in sorted(listed, key=lambda e: (e.mtime, e.name)):
            sig = (entry.size, entry.mtime)
            unmoved = self._unmoved.get(entry.name)
            if unmoved is not None and unmoved[0] == sig:
                ready.append((entry, unmoved[1]))  # taken on already: only move it
                continue
            self._unmoved.pop(entry.name, None)  # a new file under an old name
            seen = self._seen.get(entry.name)
            if seen is None or seen[0] != sig:
                self._seen[entry.name] = (sig, now)
                if self.config.settle > 0:
                    continue
                seen = (sig, now)
            if now - seen[1] >= self.config.settle:
                ready.append((entry, ""))
        for entry, folder in ready:
            if self._stopping.is_set():
                return
            if folder:
                await self._move(entry, folder)
            else:
                await self._take(entry)

    async def _take(self, entry: Entry) -> None:
        cfg = self.config
        if entry.size > cfg.max_bytes:
            log.error("%s source %s: %s is %d bytes, over max_bytes (%d); not read, moved "
                      "to %s", self.transport, self.address, entry.name, entry.size,
                      cfg.max_bytes, cfg.error)
            self.refused += 1
            await self._move(entry, cfg.error)
            return
        try:
            raw = await self.folder.read(entry.name, cfg.max_bytes)
        except FileNotFoundError:  # taken away meanwhile
            self._seen.pop(entry.name, None)
            return
        except OSError as exc:  # this file only (its permissions): the others go on
            log.error("%s source %s: %s cannot be read (%s); moved to %s", self.transport,
                      self.address, entry.name, _reason(exc), cfg.error)
            self.refused += 1
            await self._move(entry, cfg.error)
            return
        if len(raw) != entry.size:  # written to since it settled: look again later
            self._seen.pop(entry.name, None)
            return
        assert self._deliver is not None
        self._in_flight = True
        try:
            await self._hand_over(entry, raw)
        finally:
            self._in_flight = False

    async def _hand_over(self, entry: Entry, raw: bytes) -> None:
        """Deliver, answer, move: what stop() lets finish."""
        cfg = self.config
        assert self._deliver is not None
        try:
            receipt = await self._deliver(raw, SourceMeta(self.transport, entry.name, len(raw)))
        except Exception as exc:  # the channel could not take it on: keep it for ops
            log.error("%s source %s: %s could not be taken on (%s); moved to %s, move it "
                      "back to try again", self.transport, self.address, entry.name,
                      type(exc).__name__, cfg.error)
            self.refused += 1
            await self._move(entry, cfg.error)
            return
        await self._reply(entry, receipt)
        taken = receipt.status in _TAKEN
        kept = sum(part.status in _TAKEN for part in receipt.parts)
        if not taken and kept:
            first = next((p.message_id for p in receipt.parts if p.status is receipt.status),
                         "")
            # Some of its messages were taken on: the file is done with (moved back, it
            # would be taken again), and which ones were refused is in its answer.
            self.taken += 1
            log.warning("%s source %s: %s: %d of its %d messages were taken on, the rest "
                        "not (the first: message %s, %s); its answer says which; moved "
                        "to %s", self.transport, self.address, entry.name, kept,
                        len(receipt.parts), first or "-", receipt.status.value, cfg.done)
            taken = True
        elif taken:
            self.taken += 1
        else:
            self.refused += 1
            log.warning("%s source %s: %s was %s (message %s); moved to %s", self.transport,
                        self.address, entry.name,
                        receipt.status.value if receipt.message_id else "not stored",
                        receipt.message_id or "-", cfg.error)
        await self._move(entry, cfg.done if taken else cfg.error)

    async def _reply(self, entry: Entry, receipt: Receipt) -> None:
        if self.config.reply_directory is None or not receipt.replies:
            return
        try:
            await self.folder.write_reply(entry.name + REPLY_SUFFIX, b"".join(receipt.replies))
        except (OSError, Unavailable) as exc:  # the message is stored: its answer is lost
            log.error("%s source %s: the answer to %s could not be written (%s)",
                      self.transport, self.address, entry.name, _reason(exc))
            return
        receipt.replied()

    async def _move(self, entry: Entry, folder: str) -> None:
        self._seen.pop(entry.name, None)
        try:
            await self.folder.move(entry.name, folder)
        except (OSError, Unavailable) as exc:
            if entry.name not in self._unmoved:
                log.error("%s source %s: %s could not be moved to %s (%s); it will not be "
                          "read again, the move is retried each poll", self.transport,
                          self.address, entry.name, folder, _reason(exc))
            self._unmoved[entry.name] = ((entry.size, entry.mtime), folder)
            return
        self._unmoved.pop(entry.name, None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) if isinstance(exc, Unavailable) else type(exc).__name__

