"""Every kind of source, destination and codec the engine knows, by its `type:` name.

A new transport or standard is one new module plus one line here; the config schema's
tagged unions and the runtime's factories both come from these tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from engine.connectors.channel import (
    ChannelDestination,
    ChannelDestinationConfig,
    ChannelSource,
    ChannelSourceConfig,
)
from engine.connectors.core import CoreDestination, CoreDestinationConfig
from engine.connectors.fhir import FhirDestination, FhirDestinationConfig
from engine.connectors.fhir_source import FhirSource, FhirSourceConfig
from engine.connectors.file import FileDestination, FileDestinationConfig
from engine.connectors.file_source import FileSource, FileSourceConfig
from engine.connectors.http import HttpDestination, HttpDestinationConfig
from engine.connectors.http_source import HttpSource, HttpSourceConfig
from engine.connectors.mllp import (
    MllpDestination,
    MllpDestinationConfig,
    MllpSource,
    MllpSourceConfig,
)
from engine.connectors.sftp import SftpDestination, SftpDestinationConfig
from engine.connectors.sftp_source import SftpSource, SftpSourceConfig
from engine.formats.base import Codec, opening
from engine.formats.fhir import FhirCodec
from engine.formats.hl7v2 import Hl7v2Codec
from engine.formats.ncpdp import NcpdpCodec
from engine.formats.x12 import X12Codec
from engine.queue.sql import SqlQueue


class Kind(NamedTuple):
    config: type
    factory: Callable[..., Any]


# Source factories take (config, SourceContext); those that need nothing of the engine
# take their config only.
SOURCES: dict[str, Kind] = {
    "mllp": Kind(MllpSourceConfig, lambda config, context: MllpSource(config, context.shared_port)),
    "fhir": Kind(FhirSourceConfig, FhirSource),
    "channel": Kind(ChannelSourceConfig, lambda config, context: ChannelSource(config)),
    "http": Kind(HttpSourceConfig, HttpSource),
    "file": Kind(FileSourceConfig, lambda config, context: FileSource(config)),
    "sftp": Kind(SftpSourceConfig, lambda config, context: SftpSource(config)),
}

DESTINATIONS: dict[str, Kind] = {
    "file": Kind(FileDestinationConfig, FileDestination),
    "http": Kind(HttpDestinationConfig, HttpDestination),
    "fhir": Kind(FhirDestinationConfig, FhirDestination),
    "mllp": Kind(MllpDestinationConfig, MllpDestination),
    "channel": Kind(ChannelDestinationConfig, ChannelDestination),
    "sftp": Kind(SftpDestinationConfig, SftpDestination),
    "core": Kind(CoreDestinationConfig, CoreDestination),
}

def _redis_queue(config: Any, db: Any, owner: str) -> Any:
    # redis (with the OpenTelemetry it loads) costs a quarter second at every start
    from engine.queue import redis_streams

    return redis_streams.from_config(config, db, owner)


# Queue backends (engine.queue.base.Queue), built from (QueueConfig, store engine, owner).
QUEUES: dict[str, Callable[..., Any]] = {
    "sql": lambda config, db, owner: SqlQueue(db, owner),
    "redis": _redis_queue,
}

CODECS: dict[str, Callable[[], Codec]] = {
    "hl7v2": Hl7v2Codec,
    "fhir": FhirCodec,
    "x12": X12Codec,
    "ncpdp": NcpdpCodec,
}


def codec_for(config: Any) -> Codec:
    """A channel's codec, with the fields its source requires (checked under lenient or
    strict validation): the engine's and `conduit ack --channel`'s alike."""
    codec = CODECS[config.format]()
    required = getattr(config.source, "required", None)
    if required:
        codec.require(required)
    return codec


def _fhir_xml(raw: bytes) -> bool:
    return raw[:1] == b"<" and b"http://hl7.org/fhir" in raw.lower()


# Standards recognised but not read yet (no codec), by the name `detect` gives them, in
# the order they are tried after the codecs; each becomes a codec in CODECS in its turn.
RECOGNISED: dict[str, Callable[[bytes], bool]] = {
    "fhir-xml": _fhir_xml,
}


def detect(raw: bytes) -> str:
    """The standard a message is written in, from its first bytes: a codec's name, a
    RECOGNISED name, or "unknown"."""
    for name, factory in CODECS.items():
        if factory().detect(raw):
            return name
    head = opening(raw, 512)
    return next((name for name, test in RECOGNISED.items() if test(head)), "unknown")


def codec_for_content(content_type: str) -> Codec | None:
    """The codec of the standard a content type belongs to, e.g. to read the replies to
    what a channel sends (an HL7v2 ACK for HL7v2 out, whatever the channel reads in)."""
    for factory in CODECS.values():
        codec = factory()
        if codec.content_type == content_type.split(";")[0].strip():
            return codec
    return None


def extension_for(content_type: str) -> str | None:
    """The default file extension of a standard's content type (exactly as the codec
    names it), or None when no codec writes it."""
    for factory in CODECS.values():
        codec = factory()
        if codec.content_type == content_type:
            return codec.extensions[0]
    return None
