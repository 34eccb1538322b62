"""File destination: one file per message, written so a reader never sees half a file."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Annotated

from msgspec import Meta

from engine.config.base import DestinationBase
from engine.connectors.base import DestinationContext
from engine.message import Delivery, Outbound, Retry, Sent

_EXTENSIONS = {
    "application/fhir+json": ".json",
    "application/json": ".json",
    "application/fhir+xml": ".xml",
    "x-application/hl7-v2+er7": ".hl7",
}
_PLACEHOLDER = re.compile(r"\{(message_id|control_id|channel|destination|ext)\}")


class FileDestinationConfig(DestinationBase, tag="file"):
    directory: Annotated[str, Meta(description="folder the files go to; created if missing")]
    filename: Annotated[
        str,
        Meta(description="name of each file; {message_id}, {control_id}, {channel}, "
             "{destination} and {ext} are filled in"),
    ] = "{message_id}{ext}"


class FileDestination:
    def __init__(self, config: FileDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._context = context
        self._dir = Path(config.directory)

    @property
    def address(self) -> str:
        return f"file:{self._dir}"

    async def open(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)

    def _name(self, outbound: Outbound) -> str:
        values = {
            "message_id": outbound.message_id,
            "control_id": re.sub(r"[^A-Za-z0-9._-]", "_", outbound.control_id) or "none",
            "channel": outbound.channel,
            "destination": outbound.destination,
            "ext": _EXTENSIONS.get(outbound.content_type, ".dat"),
        }
        return _PLACEHOLDER.sub(lambda m: values[m[1]], self.config.filename)

    async def send(self, outbound: Outbound) -> Delivery:
        target = self._dir / self._name(outbound)
        try:
            await asyncio.to_thread(_write_atomically, target, outbound.content)
        except OSError as exc:
            return Retry(f"cannot write {target.name}: {exc.strerror or type(exc).__name__}")
        return Sent("written")

    async def healthcheck(self) -> str | None:
        if not os.access(self._dir, os.W_OK):
            return f"{self._dir} is not writable"
        return None

    async def close(self) -> None:
        return None


def _write_atomically(target: Path, content: bytes) -> None:
    """Write to a hidden temporary name, flush to disk, then rename into place: a reader
    polling the folder sees the whole file or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
