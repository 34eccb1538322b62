"""Whose numbers a SCRIPT message carries, for the version 2 NCPDP mappings.

An MRN, a PrescriberOrderNumber and a MessageID are unique only within the system that
assigned them: the prescriber's system (an EHR, or its e-prescribing module) for every
message about a prescription it wrote. That system is the Header From of what the
prescriber sends (NewRx, CancelRx, RxRenewalResponse, RxChangeResponse) and the Header To
of what the pharmacy sends back (RxFill, RxRenewalRequest, CancelRxResponse,
RxChangeRequest), written "value^qualifier" as the codec writes a party, so the same
identifier string names it from either side.

What this does not know: a network may address a prescriber by a per-location
identifier (an SPI) rather than by the EHR, so one EHR's patient seen by two locations
becomes two Patients. That splits records that belong together, which an analyst can
link; it never merges two people, which is what keying by the MRN alone did.
"""

from __future__ import annotations

from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib.fhir import resource_id

SCOPE = "ncpdp"
ORDER_KEY = "urn:conduit:id:ncpdp:MessageID"
# What the pharmacy sends to the prescriber: the prescriber's system is its Header To.
PHARMACY_SENDS = frozenset({"RxFill", "RxRenewalRequest", "CancelRxResponse",
                            "RxChangeRequest", "RxFillIndicatorChange"})


def party(message: ScriptMessage, which: str) -> str:
    """Header From or To as "value^qualifier" ("value" without a qualifier)."""
    value = message.value(f"Header/{which}")
    qualifier = message.value(f"Header/{which}@Qualifier")
    return f"{value}^{qualifier}" if qualifier else value


def prescriber_system(message: ScriptMessage) -> str:
    """The system that assigned the message's MRN and order numbers: Header From of a
    prescriber's message, Header To of a pharmacy's."""
    return party(message, "To" if message.message_type in PHARMACY_SENDS else "From")


def order_id(system: str, message_id: str) -> str:
    """The id of the MedicationRequest an order-making message (NewRx, an approved
    RxRenewalResponse) writes: that message's MessageID within the prescriber's system.
    Every later message about the order names that MessageID in RelatesToMessageID, so
    it reaches the same id without knowing the order number."""
    return resource_id("MedicationRequest", SCOPE,
                       {"system": ORDER_KEY, "value": f"order|{system}|{message_id}"})


def order_literal(system: str, message_id: str) -> dict[str, str]:
    """A literal reference to that MedicationRequest."""
    return {"reference": f"MedicationRequest/{order_id(system, message_id)}",
            "type": "MedicationRequest"}
