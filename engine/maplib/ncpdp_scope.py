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

