"""The FHIR source as the keeper of versions: meta.versionId of what it is sent.

A FHIR server assigns versions (R4 http.html#versioning): the first PUT of an id
creates version 1 (201 Created), each later one the next (200, ETag W/"2", Location
.../_history/2), so a mapping can tell a new person (ADT^A28) from an update (A31). The
source takes the next version of each PUT's id from the store (engine.store.
fhir_versions: durable, shared by every process on one database) before it hands the
resource to the channel, sets it as meta.versionId in what is stored, and gives it back
when the answer is no 2xx (refused, failed, or not stored), so that a refused update
does not count.

A resource that arrives with meta.versionId keeps it and takes no version: a FHIR server
relaying its own resources (a subscription's notifications, a forwarder) is the keeper
of those, and its versions are what the receiver must see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from engine.message import MessageStatus, Receipt

VALID_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")  # FHIR's id: at most 64 of these
# What a 2xx answers: taken on, or on record and deliberately not forwarded.
_KEPT = (MessageStatus.ACCEPTED, MessageStatus.FILTERED, MessageStatus.DUPLICATE)


class Taken(NamedTuple):
    """A version taken for a resource, and where it sits: `entry`, its index among the
    Bundle entries handed to the channel (None for a resource posted alone)."""

    kind: str
    rid: str
    version: int
    entry: int | None = None


def unversioned(resource: Any) -> bool:
    """True when the sender set no meta.versionId (a malformed meta is left alone, for
    validation to report)."""
    if not isinstance(resource, dict):
        return False
    meta = resource.get("meta")
    return meta is None or (isinstance(meta, dict) and not meta.get("versionId"))


def with_version(resource: dict[str, Any], version: int) -> dict[str, Any]:
    """The resource with meta.versionId set (a copy; the sender's dict is kept)."""
    return {**resource, "meta": {**(resource.get("meta") or {}), "versionId": str(version)}}


class Versioner:
    """Versions for one channel's FHIR source; a no-op without a store (a source built
    outside an engine)."""

    def __init__(self, versions: Any, channel: str) -> None:
        self._versions = versions  # engine.store.fhir_versions.FhirVersions, or None
        self._channel = channel

    async def update(self, kind: str, rid: Any, resource: dict[str, Any],
                     entry: int | None = None) -> tuple[dict[str, Any], Taken | None]:
        """The resource of a PUT with its next version, and what was taken (None when
        the sender set the version, the id is no FHIR id, or there is no store)."""
        if self._versions is None or not isinstance(rid, str) or not VALID_ID.match(rid) \
                or not unversioned(resource):
            return resource, None
        version = await self._versions.take(self._channel, kind, rid)
        return with_version(resource, version), Taken(kind, rid, version, entry)

    async def settle(self, taken: Sequence[Taken], receipt: Receipt) -> None:
        """Give back each version whose resource was not taken on (its answer no 2xx)."""
        for item in taken:
            if not taken_on(receipt, item.entry):
                await self._versions.give_back(self._channel, item.kind, item.rid,
                                               item.version)


def taken_on(receipt: Receipt, entry: int | None) -> bool:
    """Whether the resource (or Bundle entry `entry`) was stored and answered 2xx: its
    part's receipt when the channel split the Bundle, else the whole message's."""
    parts = {p.index: p for p in receipt.parts}
    if parts and entry is not None:
        part = parts.get(entry)
        return part is not None and bool(part.message_id) and part.status in _KEPT
    return bool(receipt.message_id) and receipt.status in _KEPT
