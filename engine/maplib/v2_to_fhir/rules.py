"""Which rules a lenient HL7v2-to-FHIR conversion follows, so that one set of builders
serves every released version and a released version's output never changes.

The builders are shared by `hl7v2-to-fhir@1` and the per-type versions released with it
(`hl7v2-adt-to-fhir@3`, `hl7v2-oru-to-fhir@2`, ...), which follow `FIRST`, and by the
versions released after, which run their builder inside `using(SECOND)`. A builder reads
the rules from its `Build` (`b.rules`); a shared reader far from any Build (a unit, a
coding system) asks `current()`. Each rule is a named switch, so a reader says which
release changed what.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import msgspec


class Rules(msgspec.Struct, frozen=True):
    """The switches that differ between releases; all off is the first release."""

    # The Patient is keyed on the best-ranked local record number of PID-3, within its
    # assigning authority (CX-4) when sent, else the sending facility
    # (`patient_key`); off: the first MR (else the first id), within MSH-4.
    patient_key_by_authority: bool = False
    # Vendor spellings read as what they mean: OBX-6 `F` as UCUM [degF], coding system
    # `CPT4` as CPT.
    vendor_spellings: bool = False
    # FT1 amounts as billing systems send them: a currency after the amount as an MO
    # (`42.00^USD`), CR as a credit, and a credit (CR, CD) as a negative amount.
    ft1_currency_and_credits: bool = False
    # Set ids (DB1-1, IN3-1) are read, so they are not listed as left behind; nor are
    # MSH-15 and MSH-16, the acknowledgment types the engine itself answers by.
    set_ids_read: bool = False
    # A visit (PV1-19) or account (PID-18) number sent without its own assigning
    # authority is unique within the Patient, not the sending system: one HIE's two
    # patients with visit V100 are two Encounters, and one patient's visit sent by the
    # ADT and the lab feed is one (`patient_key.number_scope`); off: within MSH-4.
    numbers_within_patient: bool = False


FIRST = Rules()
SECOND = Rules(patient_key_by_authority=True, vendor_spellings=True,
               ft1_currency_and_credits=True, set_ids_read=True, numbers_within_patient=True)

_current: contextvars.ContextVar[Rules] = contextvars.ContextVar("conduit_v2_rules",
                                                                 default=FIRST)


@contextlib.contextmanager
def using(rules: Rules) -> Iterator[Rules]:
    """Convert under `rules` within the block (a mapping version's choice)."""
    token = _current.set(rules)
    try:
        yield rules
    finally:
        _current.reset(token)


def current() -> Rules:
    return _current.get()
