"""Base structs that sources, destinations and channels share.

Each connector module declares its own config struct by subclassing `SourceBase` or
`DestinationBase` with a `tag` (its `type:` in YAML); field descriptions live in
`msgspec.Meta` so validation messages and reference docs come from one declaration.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.config.conformance import ConformanceConfig
from engine.config.types import Duration


class RetryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How a destination's queue retries: exponential backoff with jitter, then dead letter."""

    max_attempts: Annotated[int, Meta(ge=1, description="attempts before dead-lettering")] = 10
    initial_delay: Annotated[Duration, Meta(description="delay after the first failure")] = (
        Duration(1.0)
    )
    max_delay: Annotated[Duration, Meta(description="ceiling for any one delay")] = Duration(300.0)
    multiplier: Annotated[float, Meta(ge=1.0, description="growth factor per attempt")] = 2.0
    jitter: Annotated[
        float, Meta(ge=0.0, le=1.0, description="random spread, as a fraction of the delay")
    ] = 0.2


class SourceBase(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True,
                 frozen=True):
    """Where a channel's messages come from."""


class DestinationBase(msgspec.Struct, tag_field="type", forbid_unknown_fields=True,
                      kw_only=True, frozen=True):
    """Where a channel delivers; each destination has its own durable queue."""

    name: Annotated[
        str,
        Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="unique within the channel; "
             "lowercase letters, digits, - and _"),
    ]
    optional: Annotated[
        bool,
        Meta(description="when true, a destination whose settings use an unset environment "
             "variable is disabled with a log line instead of failing validation"),
    ] = False
    retry: Annotated[
        RetryConfig | None, Meta(description="overrides the channel's retry policy")
    ] = None
    timeout: Annotated[Duration, Meta(description="limit for one delivery attempt")] = (
        Duration(30.0)
    )
    order: Annotated[
        Literal["destination", "patient"] | None,
        Meta(description="destination: every message in queue order, one at a time; "
             "patient: in order per patient (the message's pseudonym; messages without "
             "one count as one patient), up to `concurrency` patients at once; defaults "
             "to the channel's order"),
    ] = None
    concurrency: Annotated[int, Meta(ge=1, le=64, description=(
        "messages in flight at once: with order patient, each of another patient; with "
        "order destination, more than 1 sends that many at once, out of order (for "
        "messages that stand alone)"))] = 1
    send: Annotated[
        Literal["mapped", "received"],
        Meta(description="what this destination gets: the mapping's output (mapped), or "
             "the message as the channel took it on (received), e.g. a FHIR channel "
             "forwarding the resource to a FHIR server beside its HL7v2 output; a "
             "message the mapping skips still goes to the received ones"),
    ] = "mapped"
    conformance: Annotated[
        ConformanceConfig | None,
        Meta(description="a gate: only outputs valid against FHIR R4 and the US Core "
             "profiles named are queued for this destination; one that fails is held as "
             "an error with located reasons, for reprocessing after a fix"),
    ] = None
