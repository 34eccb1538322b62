"""FHIR REST destination: a transaction or batch Bundle is POSTed to the server's base
URL; a single resource is PUT to [base]/[type]/[id] when it carries an id (so a
redelivery updates instead of duplicating) and POSTed to [base]/[type] otherwise."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.connectors.http import HttpDestination, HttpDestinationConfig
from engine.message import Outbound


class FhirDestinationConfig(HttpDestinationConfig, tag="fhir"):
    url: Annotated[
        str, Meta(pattern=r"^https?://", description="the FHIR server's base URL")
    ]


class _Head(msgspec.Struct):
    resourceType: str = ""
    id: str = ""


_decode_head = msgspec.json.Decoder(_Head).decode


class FhirDestination(HttpDestination):
    config: FhirDestinationConfig

    def request_for(self, outbound: Outbound) -> tuple[str, str, dict[str, str]]:
        base = self.config.url.rstrip("/")
        headers = {
            "Content-Type": "application/fhir+json; charset=utf-8",
            "Accept": "application/fhir+json",
        }
        try:
            head = _decode_head(outbound.content)
        except msgspec.DecodeError:
            head = _Head()
        if head.resourceType == "Bundle" or not head.resourceType:
            return "POST", base, headers
        if head.id:
            return "PUT", f"{base}/{head.resourceType}/{head.id}", headers
        return "POST", f"{base}/{head.resourceType}", headers
