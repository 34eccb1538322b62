"""A channel's `filter:` rules and `split:` setting, as msgspec structs.

Kept apart from `engine.config.schema`, which builds the source and destination unions
from the registry and so imports every connector: the filter and splitting steps and the
declarative mapping loader need only these two declarations, and loading a YAML mapping
must not import a transport. This module imports msgspec and nothing of the engine.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class FilterRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, rename={"in_": "in"}):
    """One condition on a field, or one FHIRPath expression; a channel accepts a message
    only if every rule holds."""

    field: Annotated[
        str | None,
        Meta(description="field path in the codec's notation, e.g. MSH-9.1, or a dotted "
                         "path such as meta.source for FHIR; takes one condition below"),
    ] = None
    fhirpath: Annotated[
        str | None,
        Meta(description="FHIRPath expression on the resource (format: fhir), instead of "
                         "field: and a condition; holds when its result is not empty and "
                         "not all false"),
    ] = None
    equals: Annotated[str | None, Meta(description="the field must equal this")] = None
    in_: Annotated[list[str] | None, Meta(description="the field must be one of these")] = None
    not_in: Annotated[list[str] | None, Meta(description="the field must be none of these")] = (
        None
    )
    matches: Annotated[str | None, Meta(description="the field must match this regex")] = None
    present: Annotated[bool | None, Meta(description="the field must (not) be empty")] = None


class SplitConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Bundle splitting: each matching entry of an incoming Bundle becomes a message."""

    resource: Annotated[
        str,
        Meta(pattern=r"^(\*|[A-Z][A-Za-z]*)$",
             description="resource type of the entries that become messages, e.g. Patient; "
                         "* for every entry"),
    ]
