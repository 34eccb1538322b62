"""File destination: one file per message, written so a reader never sees half a file,
and only its owner may read it (0600 in 0700 folders, whatever the umask) unless `mode:`
says otherwise: the files hold PHI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

from msgspec import Meta

from engine.config.base import DestinationBase
from engine.connectors.base import DestinationContext
from engine.fsync import fsync_dir
from engine.message import Delivery, Outbound, Retry, Sent

# Generic JSON, and structured-syntax suffixes (RFC 6839: application/fhir+json is JSON,
# application/fhir+xml XML), for content types no codec names.
_GENERIC = {"application/json": ".json"}
_SUFFIXES = {"+json": ".json", "+xml": ".xml"}
_PLACEHOLDER = re.compile(r"\{(message_id|control_id|channel|destination|ext)\}")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # never write through a planted symlink
log = logging.getLogger("conduit.file")


class FileDestinationConfig(DestinationBase, tag="file"):
    directory: Annotated[str, Meta(description="folder the files go to; created if missing")]
    filename: Annotated[
        str,
        Meta(description="name of each file; {message_id}, {control_id}, {channel}, "
             "{destination} and {ext} are filled in"),
    ] = "{message_id}{ext}"
    mode: Annotated[
        str,
        Meta(pattern=r"^0?6[0246][04]$",
             description="octal permissions of each file, such as \"0640\": the owner reads "
             "and writes, the group may read or write, others may at most read, nobody "
             "executes; folders the engine makes get x where reading is allowed. Default "
             "0600: the files hold PHI"),
    ] = "0600"


class FileDestination:
    def __init__(self, config: FileDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._context = context
        self._dir = Path(config.directory)
        self._mode = int(config.mode, 8)

    @property
    def address(self) -> str:
        return f"file:{self._dir}"

    async def open(self) -> None:
        if self._dir.is_dir():
            _warn_if_open(self._dir, self._mode, self.config.name)
        else:
            make_folders(self._dir, folder_mode(self._mode))

    def _name(self, outbound: Outbound) -> str:
        return file_name(self.config.filename, outbound, self._context)

    async def send(self, outbound: Outbound) -> Delivery:
        target = self._dir / self._name(outbound)
        try:
            await asyncio.to_thread(write_atomically, target, outbound.content, self._mode)
        except OSError as exc:
            return Retry(f"cannot write {target.name}: {exc.strerror or type(exc).__name__}")
        return Sent("written")

    async def send_many(self, outbounds: list[Outbound]) -> list[Delivery]:
        """Several files in one trip to a thread and one round of fsyncs, written in
        order; the deliveries of those attempted, stopping at the first that failed. A
        name met twice ends the batch before its second file (the rest are sent later)."""
        targets: list[Path] = []
        for outbound in outbounds:
            target = self._dir / self._name(outbound)
            if target in targets:
                break
            targets.append(target)
        contents = [o.content for o in outbounds[:len(targets)]]
        written, error = await asyncio.to_thread(write_many_atomically, targets, contents,
                                                 self._mode)
        deliveries: list[Delivery] = [Sent("written")] * written
        if error is not None:
            deliveries.append(Retry(f"cannot write {targets[written].name}: "
                                    f"{error.strerror or type(error).__name__}"))
        return deliveries

    async def healthcheck(self) -> str | None:
        if not self._dir.is_dir():  # a plain file in its place fails every write
            return f"{self._dir} is not a folder"
        if not os.access(self._dir, os.W_OK):
            return f"{self._dir} is not writable"
        return None

    async def close(self) -> None:
        return None


def file_name(template: str, outbound: Outbound, context: DestinationContext) -> str:
    """A `filename:` template filled in for one message (the SFTP destination's too)."""
    values = {
        "message_id": outbound.message_id,
        "control_id": re.sub(r"[^A-Za-z0-9._-]", "_", outbound.control_id) or "none",
        "channel": outbound.channel,
        "destination": outbound.destination,
        "ext": _extension(outbound.content_type, context),
    }
    return _PLACEHOLDER.sub(lambda m: values[m[1]], template)


def _extension(content_type: str, context: DestinationContext) -> str:
    """The extension its codec gives a content type (asked through the context), else
    that of its syntax, else ".dat"."""
    ask = context.extension_for
    found = ask(content_type) if ask is not None else None
    if found is None:
        found = _GENERIC.get(content_type) or next(
            (ext for suffix, ext in _SUFFIXES.items() if content_type.endswith(suffix)),
            None)
    return found or ".dat"


def folder_mode(file_mode: int) -> int:
    """A folder's mode for files of `file_mode`: x (search) wherever r is allowed."""
    return 0o700 | file_mode | (file_mode & 0o044) >> 2


def make_folders(folder: Path, mode: int) -> None:
    """Create `folder` and its missing parents with exactly `mode`; unlike
    Path.mkdir(parents=True), parents get it too, and the umask takes nothing off."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another writer: theirs to set
        os.chmod(path, mode)


def _warn_if_open(folder: Path, file_mode: int, name: str) -> None:
    """An existing folder is the admin's to set, but say so when it lets others in while
    its files are meant for fewer."""
    folder_bits = stat.S_IMODE(folder.stat().st_mode)
    if folder_bits & 0o004 and not file_mode & 0o004:
        log.warning("file destination %s: folder %s is readable by other users (mode %04o); "
                    "its files are written %04o", name, folder, folder_bits, file_mode)


def write_atomically(target: Path, content: bytes, mode: int = 0o600) -> None:
    """Write to a hidden temporary name with exactly `mode` (fchmod: the umask and a stale
    temporary file's mode do not count), flush to disk, rename into place and flush the
    folder: a reader polling the folder sees the whole file or nothing, and a file
    reported written survives a power cut under its name. Raises OSError."""
    _, error = write_many_atomically([target], [content], mode)
    if error is not None:
        raise error


def write_many_atomically(targets: list[Path], contents: list[bytes], mode: int = 0o600
                          ) -> tuple[int, OSError | None]:
    """Several files written as write_atomically says, at once: all written, then all
    flushed to disk, then renamed into place in order and their folders flushed, so each
    file counted is on disk whole under its name. Missing folders are made when the first
    open finds them missing, not looked for on every write: each system call gives up the
    GIL and waits to take it back from a busy event loop. The count written, and what
    stopped the next one (None when all were). Targets must differ."""
    fds: list[int] = []
    tmps: list[str] = []
    error: OSError | None = None
    done = 0  # files written whole so far
    try:
        for target, content in zip(targets, contents, strict=True):
            folder, name = os.path.split(target)
            tmp = os.path.join(folder, f".{name}.tmp")
            try:
                fds.append(_open_temporary(tmp, mode))
            except OSError as exc:
                error = exc
                break
            tmps.append(tmp)
            try:
                os.fchmod(fds[-1], mode)
                view = memoryview(content)
                while view:
                    view = view[os.write(fds[-1], view):]
            except OSError as exc:
                error = exc
                break
            done += 1
        synced, failed = _sync_all(fds[:done])
        if failed is not None:
            error, done = failed, synced
    finally:
        for fd in fds:
            os.close(fd)
    for i in range(done):
        try:
            os.replace(tmps[i], targets[i])
        except OSError as exc:
            error, done = exc, i
            break
    for tmp in tmps[done:]:  # what was not renamed: a stale temporary file helps no one
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    try:
        for folder in dict.fromkeys(t.parent for t in targets[:done]):
            fsync_dir(folder)  # the renames themselves
    except OSError as exc:  # renamed, but not known to be on disk: all written again
        return 0, exc
    return done, error


# A batch's files are synced side by side: the filesystem then commits them to its journal
# together, where one after another each waited for a journal commit of its own and the
# shipped channels' file destination fell behind its source (docs/performance.md). Each
# thread takes a run of the batch rather than one file: a pool's task per file cost the
# event loop's GIL more than the syncs it spread.
_SYNC_THREADS = 4
_SYNCS = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="conduit-fsync")


def _sync_all(fds: list[int]) -> tuple[int, OSError | None]:
    """fsync every descriptor: how many, in order, were synced before the first that
    failed, and its error (None when all were)."""
    if len(fds) < 2:
        return _sync_run(fds)
    size = -(-len(fds) // _SYNC_THREADS)
    starts = range(0, len(fds), size)
    outcomes = _SYNCS.map(_sync_run, [fds[i:i + size] for i in starts])
    for start, (synced, error) in zip(starts, outcomes, strict=True):
        if error is not None:
            return start + synced, error
    return len(fds), None


def _sync_run(fds: list[int]) -> tuple[int, OSError | None]:
    """fsync in order: how many before the first that failed, and its error."""
    for synced, fd in enumerate(fds):
        try:
            os.fsync(fd)
        except OSError as exc:
            return synced, exc
    return len(fds), None


def _open_temporary(tmp: str, mode: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW
    try:
        return os.open(tmp, flags, mode)
    except FileNotFoundError:
        make_folders(Path(tmp).parent, folder_mode(mode))
        return os.open(tmp, flags, mode)
