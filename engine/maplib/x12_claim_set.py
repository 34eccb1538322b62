"""An 837 claim set as a FHIR transaction Bundle: what every `x12-837-to-fhir` version
does with a set (checks, claims in the order sent, the warnings of what it left out),
each version only naming itself, so @1's output stays as released while @2 reads more
(`x12_claims.claim_resources`' `version`). The mappings' docstrings list the choices."""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.errors import MappingError
from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.maplib import x12_claims as xc
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import one_per_id, transaction
from engine.maplib.x12_unread import BIRTH_DATE, CLAIM_TOTAL, GENDER, unread
from engine.mapping_base import Mapped

# Read leniently and, when they cannot be read, left out with a located warning.
_READ_LENIENTLY = (CLAIM_TOTAL, BIRTH_DATE, GENDER)


def claims_bundle(message: X12Message, version: int) -> Mapped:
    """Map one 837 transaction set to a transaction Bundle of its claims."""
    if message.segments[0].element(1) != "837":
        raise MappingError("this mapping reads 837 claim sets only", field="ST01")
    variant = xc.variant_of(message)
    tree = message.tree
    if variant is None or tree is None:
        raise MappingError("not an 837P (X222), 837I (X223) or 837D (X224) convention",
                           field="ST03")
    created = xf.set_timestamp(message)
    if created is None:
        raise MappingError("the set's creation date is not a date", field="BHT04")
    found = xc.claims_of(tree)
    if not found:
        raise MappingError("the set holds no claim", field="CLM")
    resources: list[dict[str, Any]] = []
    subscribers: dict[int, xc.Subscriber] = {}
    numbered: Counter[tuple[str, str]] = Counter()  # claims so far by provider and CLM01
    for billing, sub, patient_level, claim in found:
        billing_name = billing.first("2010AA")
        if billing_name is None or xc.name_of(billing_name) is None:
            raise MappingError("a claim's billing provider name is missing", field="2010AA")
        if id(sub) not in subscribers:
            subscribers[id(sub)] = _subscriber(message, sub)
        number = (xc.provider_key(billing_name), claim.value("CLM01"))
        numbered[number] += 1
        resources += xc.claim_resources(message, variant[0], variant[1], created,
                                        billing, subscribers[id(sub)], patient_level, claim,
                                        numbered[number], version=version)
    return Mapped(transaction(one_per_id(resources)), unread(tree, _READ_LENIENTLY))


def _subscriber(message: X12Message, sub: Node) -> xc.Subscriber:
    """A subscriber level read once; a claim needs its subscriber and payer names."""
    read = xc.subscriber_of(message, sub)
    if read is None:
        field = "SBR" if sub.seg("SBR") is None else \
            "2010BA" if xc.name_of(sub.first("2010BA")) is None else "2010BB"
        raise MappingError("a claim's subscriber or payer name is missing", field=field)
    return read
