"""The shape of conf/conduit.yaml and of each channels/*.yaml, as msgspec structs.

Descriptions live in `Meta` beside each field, so validation errors and the reference
documentation come from the same declaration. Source and destination unions are built
from the registry: a new connector kind needs no edit here.
"""

from __future__ import annotations

from functools import reduce
from operator import or_
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine import registry
from engine.config.alerts import AlertsConfig
from engine.config.base import RetryConfig
from engine.config.change_control import ChangeControlConfig
from engine.config.keys import KeysConfig
from engine.config.respond import RespondConfig
from engine.config.rules import FilterRule, SplitConfig
from engine.config.slo import SloConfig
from engine.config.tracing import TracingConfig
from engine.config.types import Duration, Retention
from engine.config.x12 import X12PartnerConfig

SourceConfig: Any = reduce(or_, (k.config for k in registry.SOURCES.values()))
DestinationConfig: Any = reduce(or_, (k.config for k in registry.DESTINATIONS.values()))


class ChannelConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One channel: a source, an optional filter and mapping, and its destinations."""

    source: Annotated[SourceConfig, Meta(description="where messages come from")]
    destinations: Annotated[
        list[DestinationConfig], Meta(min_length=1, description="where messages go")
    ]
    name: (
        Annotated[
            str,
            Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$",
                 description="defaults to the file name without .yaml"),
        ]
        | None
    ) = None
    description: str = ""
    enabled: Annotated[bool, Meta(description="a disabled channel is loaded but not run")] = (
        True
    )
    format: Annotated[
        Literal[tuple(registry.CODECS)],  # type: ignore[valid-type]
        Meta(description="standard of incoming messages (the codec)"),
    ] = "hl7v2"
    filter: Annotated[
        list[FilterRule], Meta(description="every rule must hold, or the message is filtered")
    ] = []
    split: Annotated[
        SplitConfig | None,
        Meta(description="format: fhir only: split each incoming Bundle into one message "
                         "per entry of a resource type, each filtered, mapped and queued "
                         "on its own"),
    ] = None
    x12: Annotated[
        X12PartnerConfig | None,
        Meta(description="the trading-partner envelope of the X12 this channel sends: "
                         "sender, receiver, usage, TA1 request; each interchange gets the "
                         "next control number kept for the receiver"),
    ] = None
    mapping: (
        Annotated[
            str,
            Meta(pattern=r"^[a-z0-9][a-z0-9-]*@\d+$",
                 description="mapping pinned as name@version; none passes messages through"),
        ]
        | None
    ) = None
    validation: Annotated[
        Literal["off", "lenient", "strict"],
        Meta(description="structure validation of incoming messages (HL7v2: the message "
                         "structures of the declared version): lenient reports and "
                         "accepts, strict rejects with AR naming segment, field and rule"),
    ] = "off"
    duplicate_window: Annotated[
        Duration,
        Meta(description="a resend (same sender, control id and content) this recently "
                         "after the first is acknowledged but not processed again; the same "
                         "id with other content is processed and flagged as "
                         "control-id-reused; 0 turns this off"),
    ] = Duration(3600.0)
    shadow: (
        Annotated[
            str,
            Meta(pattern=r"^[a-z0-9][a-z0-9-]*@\d+$",
                 description="a candidate mapping version run beside the live one on real "
                             "traffic; only compared, never delivered"),
        ]
        | None
    ) = None
    retry: Annotated[
        RetryConfig, Meta(description="retry policy for destinations that set none")
    ] = RetryConfig()
    order: Annotated[
        Literal["destination", "patient"],
        Meta(description="delivery order for destinations that set none: destination "
                         "(strict queue order) or patient (in order per patient, "
                         "patients in parallel up to the destination's concurrency)"),
    ] = "destination"
    respond: Annotated[
        RespondConfig | None,
        Meta(description="request/response: the source answers each caller with the "
                         "named destination's answer (mapped), waiting up to timeout, "
                         "instead of acknowledging on commit"),
    ] = None
    retention: Annotated[
        Retention | None,
        Meta(description="how long message content and outputs are kept (30d, 12h); then "
                         "pruned, metadata and audit trail kept, never while queued or "
                         "dead-lettered; default: the engine's retention, or for ever"),
    ] = None

    def __post_init__(self) -> None:
        if self.respond is not None and self.respond.destination not in {
                d.name for d in self.destinations}:
            raise ValueError(f"respond.destination {self.respond.destination!r} is not one "
                             "of this channel's destinations")


class StoreConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: Annotated[
        str | None,
        Meta(description="SQLAlchemy URL; default: SQLite file conduit.db in the data folder"),
    ] = None


class QueueConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: Annotated[
        Literal[tuple(registry.QUEUES)],  # type: ignore[valid-type]
        Meta(description="sql: in the store database (the default); redis: Redis Streams, "
             "for several processes or hosts sharing the queues"),
    ] = "sql"
    url: Annotated[
        str | None,
        Meta(description="redis://host:port/db of the Redis queue (run with appendonly yes)"),
    ] = None
    prefix: Annotated[
        str, Meta(description="key prefix of this engine's queues in a shared Redis")
    ] = "conduit"

    def __post_init__(self) -> None:
        if self.type == "redis" and not self.url:
            raise ValueError("queue.url is required with type: redis")


class WebConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: Annotated[str, Meta(description="address of the status page and API")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="0 disables the web listener")] = (
        8080
    )
    tls_cert: Annotated[
        str | None, Meta(description="PEM certificate (chain) file; with tls_key, serves HTTPS")
    ] = None
    tls_key: Annotated[str | None, Meta(description="PEM private key file for tls_cert")] = None
    metrics_open: Annotated[
        bool, Meta(description="serve /metrics without a token (for a scraper on a "
                   "trusted network)")
    ] = False


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Annotated[Literal["text", "json"], Meta(description="json for log shippers")] = (
        "text"
    )
    file: Annotated[str | None, Meta(description="log file; default is standard error")] = None


class EngineConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """conf/conduit.yaml."""

    data_dir: Annotated[str, Meta(description="folder for the embedded store and keys")] = "data"
    channels_dir: Annotated[str, Meta(description="folder of channel YAML files")] = "channels"
    mappings_dir: Annotated[str, Meta(description="folder of mapping plugins")] = "mappings"
    application: Annotated[
        str, Meta(description="this engine's name in acknowledgements (MSH-3)")
    ] = "CONDUIT"
    store: StoreConfig = StoreConfig()
    queue: Annotated[
        QueueConfig, Meta(description="where the delivery queues live")
    ] = QueueConfig()
    web: WebConfig = WebConfig()
    log: LogConfig = LogConfig()
    keys: KeysConfig = KeysConfig()
    alerts: Annotated[
        AlertsConfig, Meta(description="alert rules, sent to the log, the audit trail, the "
                           "status page and a webhook")
    ] = AlertsConfig()
    slo: Annotated[
        SloConfig, Meta(description="service-level objectives per channel")
    ] = SloConfig()
    tracing: Annotated[
        TracingConfig, Meta(description="OpenTelemetry traces over OTLP/HTTP; off by default")
    ] = TracingConfig()
    retention: Annotated[
        Retention | None,
        Meta(description="retention of channels that set none (30d); default: for ever"),
    ] = None
    change_control: Annotated[
        ChangeControlConfig, Meta(description="revisions of channels and mappings: "
                                  "approvals needed before one goes live")
    ] = ChangeControlConfig()
