"""The `respond:` block of a channel: answer the caller with a destination's answer.

A channel normally answers its sender as soon as a message is durably committed. With
`respond:` its source's answer instead waits (up to `timeout`) for the named
destination to deliver the message, and is that destination's answer, mapped with
`mapping` (none: passed back as it came). Kept apart from the schema so the respond step
and the config checks import it without the registry.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.config.types import Duration


class RespondConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Request/response: which destination's answer the caller gets, how long it waits."""

    destination: Annotated[
        str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$",
                  description="the destination (by name) whose answer is returned, e.g. "
                              "a payer's 271 to the 270 this channel sends")
    ]
    timeout: Annotated[
        Duration, Meta(description="how long the caller waits for that answer; after it "
                                   "the caller gets a timeout error and the message stays "
                                   "queued and is still delivered")
    ] = Duration(10.0)
    mapping: (
        Annotated[
            str,
            Meta(pattern=r"^[a-z0-9][a-z0-9-]*@\d+$",
                 description="mapping pinned as name@version applied to the answer, e.g. "
                             "x12-271-to-fhir@1; none returns the answer as received"),
        ]
        | None
    ) = None
