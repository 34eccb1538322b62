"""The `tracing:` section of conf/conduit.yaml: where OpenTelemetry traces go and how
many messages are traced.

Config structs live with the config: `TracingConfig` was declared in `engine/tracing.py`
(now `engine/ops/tracing.py`), which sets up the OpenTelemetry SDK and names mappings and
parsed messages; the schema importing it was one of the edges of an 18-module import loop
through `engine/config/schema.py`, and loading a configuration loaded the SDK.
Declarations only; `engine.ops.tracing` builds on this module, and `TracingConfig` is
imported from here, not from it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class TracingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """OpenTelemetry traces, one per message; off unless otlp_endpoint is set."""

    otlp_endpoint: (
        Annotated[
            str,
            Meta(pattern=r"^https?://",
                 description="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces; "
                             "unset turns tracing off"),
        ]
        | None
    ) = None
    service_name: Annotated[
        str, Meta(min_length=1, description="service.name the spans are reported under")
    ] = "conduit"
    sample_ratio: Annotated[
        float,
        Meta(ge=0.0, le=1.0, description="share of messages traced (1.0 = all); decided "
             "from the message id, so every hop of a message agrees"),
    ] = 1.0
