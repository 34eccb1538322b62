"""A destination's conformance gate (`conformance:`): what its outputs must validate
against before they are queued for it (engine.conformance)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.conformance import DEFAULT_MAX_ENTRIES
from engine.conformance.us_core import NAMES


class ConformanceConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An output that fails is held as an error with located reasons, never sent."""

    fhir: Annotated[
        Literal["R4"],
        Meta(description="the FHIR release every output must validate against"),
    ] = "R4"
    profiles: Annotated[
        list[Literal[NAMES]],  # type: ignore[valid-type]
        Meta(description="US Core (6.1) profiles the outputs must follow, such as "
                         "us-core-patient or us-core-observation-lab; us-core names every "
                         "one, each applying by resource type and category"),
    ] = []
    max_entries: Annotated[
        int,
        Meta(ge=1, le=100000, description="a Bundle with more entries is held without "
                                          "being validated: validation takes about 1 ms "
                                          "per entry on the channel's intake path"),
    ] = DEFAULT_MAX_ENTRIES
