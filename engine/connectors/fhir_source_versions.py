"""The FHIR source as the keeper of versions: meta.versionId of what it is sent.

A FHIR server assigns versions (R4 http.html#versioning): the first PUT of an id
creates version 1 (201 Created), each later one the next (200, ETag W/"2", Location
.../_history/2), so a mapping can tell a new person (ADT^A28) from an update (A31). The
source takes the next version of each PUT's id from the store (engine.store.
fhir_versions: durable, shared by every process on one database) before it hands the
resource to the channel, sets it as meta.versionId in what is stored, and gives it back
when the answer is no 2xx (refused, failed, or not stored), so that a refused update
does not count.

A meta.versionId in the body does not set the version, as R4 says: clients send back
the version they read (fhirpy's update does), and taking it would answer W/"1" again
and make another A28. One exception, for an engine that relays other servers'
resources: a whole-number versionId ahead of the one kept here is taken as it is
(a Cerner Patient at version 7 stays version 7, an A31), and the count goes on from
there. Subscription notifications are not versioned here: their server keeps that.

A create (POST [base]/[type]) gets an id of the server's own, a UUID, and version 1,
whatever the body said: the id FHIR clients then read back from Location and ETag.
"""

from __future__ import annotations

import re
import uuid
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


def _sent(resource: dict[str, Any]) -> int:
    """The body's meta.versionId as a whole number (a relayed server's version), else 1."""
    sent = (resource.get("meta") or {}).get("versionId")
    return int(sent) if isinstance(sent, str) and sent.isdigit() and len(sent) < 16 else 1


def with_version(resource: dict[str, Any], version: int) -> dict[str, Any]:
    """The resource with meta.versionId set (a copy; the sender's dict is kept), over
    any the sender put there."""
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
        the id is no FHIR id, for validation to refuse, or there is no store)."""
        if self._versions is None or not isinstance(rid, str) or not VALID_ID.match(rid) \
                or not isinstance(resource.get("meta", {}), dict):
            return resource, None
        version = await self._versions.take(self._channel, kind, rid, _sent(resource))
        return with_version(resource, version), Taken(kind, rid, version, entry)

    async def update_if(self, kind: str, rid: str, resource: dict[str, Any], expected: int
                        ) -> tuple[dict[str, Any], Taken] | None:
        """A version-aware update (If-Match: W/"`expected`"): the next version when the
        id is at `expected` now, else None (412: another update came first, or the id
        is unknown)."""
        if self._versions is None or not VALID_ID.match(rid) or expected < 1:
            return None
        version = await self._versions.take_if(self._channel, kind, rid, expected)
        if version is None:
            return None
        return with_version(resource, version), Taken(kind, rid, version)

    async def create(self, kind: str, resource: dict[str, Any]
                     ) -> tuple[dict[str, Any], Taken | None]:
        """The resource of a create with an id of the server's own and version 1: FHIR
        has the server assign both (R4 http.html#create), so an id or version the client
        put in the body is replaced (a client that names its ids uses PUT)."""
        rid = str(uuid.uuid4())
        made = {**resource, "id": rid}
        if self._versions is None:
            return made, None
        version = await self._versions.take(self._channel, kind, rid)  # 1: a new id
        return with_version(made, version), Taken(kind, rid, version)

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
