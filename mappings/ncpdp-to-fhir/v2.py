"""ncpdp-to-fhir@2: any NCPDP SCRIPT message as FHIR R4, by its message type, so one
e-prescribing channel can carry every SCRIPT message with a single mapping.

Each mapped type gives exactly the bytes of its own mapping (the same functions run):
- NewRx -> ncpdp-newrx-to-fhir@2 (MedicationRequest, Patient, prescriber, pharmacy,
  Medication);
- CancelRx, CancelRxResponse -> ncpdp-cancelrx-to-fhir@2 (the cancelled
  MedicationRequest and an abort Task; the Task completed or rejected);
- RxFill -> ncpdp-rxfill-to-fhir@2 (MedicationDispense);
- RxRenewalRequest, RxRenewalResponse -> ncpdp-rxrenewal-to-fhir@2 (a proposal and its
  renewal Task; the Task decided, with the renewed order).
Read those mappings' docstrings for the choices a receiver will notice, and for what
fails (a mapped type missing what it needs fails naming the element, as there).

Any other type (Status, Error, Verify, RxChangeRequest, RxChangeResponse,
RxFillIndicatorChange, a name the engine does not know) is skipped with the reason
"<type> is not mapped to FHIR" (the type's name only: never a value from the message):
no FHIR output, so destinations of the output get nothing for it. Status, Error and
Verify are the transport's answers (the engine correlates them); RxChange and
RxFillIndicatorChange have no FHIR mapping yet. A version that maps them
will be ncpdp-to-fhir@3, so a channel pinned to @2 keeps skipping them.

A SCRIPT 10.6 message (version="010" release="006", which the codec checks in 10.6's
own element names) is skipped, "SCRIPT 10.6 is not mapped to FHIR": the type mappings
read 2017071 and 2023011, whose patient, prescriber and Sig 10.6 names otherwise, and a
channel still sends it on to the pharmacy as received.

Changed from @1: each type goes through its mapping's version 2 (ids of per-sender
identifiers within the prescriber's system; see those mappings' docstrings).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib.ncpdp_cancelrx_v2 import cancelrx_to_fhir
from engine.maplib.ncpdp_newrx import newrx_to_fhir
from engine.maplib.ncpdp_rxfill import rxfill_to_fhir
from engine.maplib.ncpdp_rxrenewal import rxrenewal_to_fhir
from engine.mapping import Skip, mapping

# Each type's mapping, version 2.
BY_TYPE: dict[str, Callable[[ScriptMessage], dict]] = {
    "NewRx": partial(newrx_to_fhir, version=2),
    "CancelRx": cancelrx_to_fhir,
    "CancelRxResponse": cancelrx_to_fhir,
    "RxFill": partial(rxfill_to_fhir, version=2),
    "RxRenewalRequest": partial(rxrenewal_to_fhir, version=2),
    "RxRenewalResponse": partial(rxrenewal_to_fhir, version=2),
}


@mapping("ncpdp-to-fhir@2", accepts="ncpdp", emits="application/fhir+json")
def ncpdp_to_fhir(message: ScriptMessage) -> dict | Skip:
    """The message through its type's mapping; a Skip for a type none maps."""
    if message.is_10_6:  # checked in its own names; still goes on to the pharmacy
        return Skip("SCRIPT 10.6 is not mapped to FHIR")
    kind = message.message_type
    convert = BY_TYPE.get(kind)
    if convert is None:
        return Skip(f"{kind or 'a message without a Body element'} is not mapped to FHIR")
    return convert(message)
