"""hl7v2-rde-to-ncpdp-newrx@1: an HL7v2 pharmacy encoded order (RDE^O11, v2.3.1 to
2.5.1, and a v2.3 sender's O01) as an NCPDP SCRIPT 2017071 NewRx, for an EHR that only
speaks HL7v2 and prescribes to a retail pharmacy.

One order per message: an RDE with a second ORC/RXE group fails naming ORC (a NewRx
carries one medication; split the message first). ORC-1 NW (new order) is mapped; any
other order control (CA, DC, XO, ...) is skipped with a reason, as it is not a new
prescription; a message that is not RDE fails naming MSH-9.

Choices a receiver will notice (building blocks in `engine/maplib/v2_to_ncpdp.py`):
- Header: MessageID is MSH-10 and SentTime MSH-7 (in UTC with milliseconds when MSH-7
  has a zone, the sender's local time without a zone otherwise), so one RDE always
  gives the same bytes; To is the pharmacy's NCPDP id (qualifier P); From is the
  sending facility MSH-4.1, else MSH-3.1 (qualifier C); PrescriberOrderNumber ORC-2.1.
- Patient: PID-3's MR id (else the first) as MedicalRecordIdentificationNumberEHR,
  PID-5 name, PID-8 gender (M, F, else U unknown), PID-7 date of birth, PID-11 address,
  PID-13 phone. A NewRx needs the date of birth: an empty or partial PID-7 fails naming
  PID-7, rather than sending a prescription the pharmacy cannot match to a patient.
  PID-5 without a family and given name fails naming PID-5.
- Prescriber: ORC-12 (else RXE-13) names the prescriber; NPI from the repetition whose
  assigning authority (XCN.9, by namespace NPI or OID 2.16.840.1.113883.4.6) or
  identifier type (XCN.13) is NPI; DEA number from RXE-13, else ORC-12's DEA
  repetition. No NPI fails naming ORC-12; a scheduled drug (RXE-35 I-V, written as
  DEASchedule) without a DEA number fails naming RXE-13. Address ORC-24 (else the
  ordering facility's ORC-22), phone ORC-14 (else ORC-23).
- Pharmacy: RXE-40 dispensing pharmacy (v2.5: a CWE; coding system NCPDP for the
  NCPDP id, NPI for the NPI; a bare 7-digit code is read as an NCPDP id) with its name
  in RXE-40.2, RXE-41 address. RXE-40 is the one RDE field that names the pharmacy a
  prescription goes to; a message without an NCPDP id or name there fails naming
  RXE-40 (there is no default pharmacy: a mapping must not send a prescription to a
  pharmacy the prescriber did not choose).
- Drug: RXE-2.2 DrugDescription; its NDC (coding system NDC) as ProductCode ND, its
  RxNorm code as DrugDBCode with qualifier SCD (HL7 does not say the term type).
- Quantity: RXE-10 (digits as sent, code list qualifier 38 original quantity) in
  RXE-11's NCI unit code; an unknown unit is C38046 Unspecified and the unit as sent
  is kept in Note ("Dispense unit as sent: ..."). RXE-10 empty fails naming RXE-10.
- Note: that unit, then the order's NTE comments (NTE after ORC, RXE, RXR or TQ1), one
  line, cut to 210 characters.
- DaysSupply: the TQ1-6 (or RXE-1 TQ.3) duration, else TQ1-7 to TQ1-8, else dispense
  amount / (RXE-3 dose x doses a day) when dose and dispense units agree; when none of
  these gives a whole number of days it fails naming TQ1-6.
- WrittenDate: RXE-32 original order date, else ORC-9 (the date only); neither fails
  naming ORC-9. NumberOfRefills RXE-12 (left out when empty). Substitutions: 1 when
  RXE-9 is 1 (substitution not allowed by prescriber), else 0.
- Sig/SigText: RXE-21 text, else RXE-7 (provider's administration instructions), else
  TQ1-11, else written from dose, unit, RXR-1 route and the repeat pattern ("1 TAB PO
  BID"); nothing to write fails naming RXE-21. SigText is cut to 1000 characters.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.formats.ncpdp.build import message as script_message
from engine.maplib import v2_fhir
from engine.maplib import v2_to_ncpdp as rx
from engine.maplib.v2_pharmacy import OrderGroup, order_groups, schedules, whole_number
from engine.mapping import Skip, mapping

MAPPED_EVENTS = frozenset({"O11", "O01"})
MAX_SIG = 1000
MAX_NOTE = 210  # SCRIPT's free-text Note length


@mapping("hl7v2-rde-to-ncpdp-newrx@1", accepts="hl7v2", emits="application/xml")
def rde_to_newrx(message: Hl7Message) -> bytes | Skip:
    """One RDE new order as a NewRx, or a skip for another event or order control."""
    event = v2_fhir.trigger_event(message, "RDE")
    if event not in MAPPED_EVENTS:
        return Skip(f"RDE^{event} is not mapped by this version")
    groups = order_groups(message)
    if len(groups) > 1:
        raise MappingError("holds more than one order; a NewRx carries one medication",
                           field="ORC")
    group = groups[0]
    control = dt.present(group.orc.value(1)).upper()
    if control != "NW":
        return Skip("only ORC-1 NW (new order) is a NewRx; this order control is not "
                    "mapped by this version")
    pid = message.segment("PID")
    if pid is None:
        raise MappingError("the PID segment is missing, so there is no patient",
                           field="PID-3")
    msh = message.segments[0]
    facility = v2_fhir.sending_facility(message)
    ids = rx.pharmacy_ids(group.rxe, f"{group.rxe_name}-40")
    order_number = dt.present(group.orc.value(2, 1))
    if not order_number:
        raise MappingError("is empty: a NewRx needs the prescriber's order number",
                           field=f"{group.orc_name}-2")
    body = {"NewRx": {
        "Patient": {"HumanPatient": _patient(pid)},
        "Pharmacy": _pharmacy(group, ids),
        "Prescriber": {"NonVeterinarian": _prescriber(group)},
        "MedicationPrescribed": _medication(group, facility, v2_fhir.sender_offset(message)),
    }}
    try:
        return script_message(
            body, to=(ids["NCPDPID"], "P"), sender=(facility, "C"),
            message_id=_message_id(msh.value(10)), sent=rx.sent_time(msh.value(7)),
            prescriber_order_number=order_number)
    except ValueError as exc:  # a control character in a value: names the element
        raise MappingError(f"a value cannot be written as XML: {exc}") from None


def _message_id(value: str) -> str:
    control_id = dt.present(value)
    if not control_id:
        raise MappingError("is empty: it is the NewRx's MessageID", field="MSH-10")
    return control_id


def _patient(pid) -> dict:
    name = rx.name(dt.first_rep(pid, 5))
    if not name["LastName"] or not name["FirstName"]:
        raise MappingError("needs a family and a given name for a NewRx", field="PID-5")
    mrn = rx.medical_record_number(pid)
    return {
        "Identification": {"MedicalRecordIdentificationNumberEHR": mrn},
        "Name": name,
        "Gender": rx.gender(pid),
        "DateOfBirth": {"Date": rx.birth_date(pid)},
        "Address": rx.address(dt.first_rep(pid, 11)),
        "CommunicationNumbers": rx.phone(pid.repetitions(13)),
    }


def _prescriber(group: OrderGroup) -> dict:
    orc, rxe = group.orc, group.rxe
    field = f"{group.orc_name}-12"
    people = orc.repetitions(12) or rxe.repetitions(13)
    named = next((r for r in people if dt.present(r.value(2))), None)
    if named is None:
        raise MappingError("names no ordering provider (family name at XCN.2)", field=field)
    dea = rx.dea_of(orc.repetitions(12), rxe.repetitions(13))
    return {
        "Identification": {"DEANumber": dea,
                           "NPI": rx.check_npi(rx.npi_of(people), field)},
        "Name": rx.xcn_name(named),
        "Address": rx.address(dt.first_rep(orc, 24)) or rx.address(dt.first_rep(orc, 22)),
        "CommunicationNumbers": rx.phone(orc.repetitions(14) + orc.repetitions(23)),
    }


def _pharmacy(group: OrderGroup, ids: dict[str, str]) -> dict:
    return {
        "Identification": {"NCPDPID": ids["NCPDPID"], "NPI": ids.get("NPI")},
        "BusinessName": rx.pharmacy_name(group.rxe, f"{group.rxe_name}-40"),
        "Address": rx.address(dt.first_rep(group.rxe, 41)),
    }


def _medication(group: OrderGroup, facility: str, offset: str | None) -> dict:
    rxe, name = group.rxe, group.rxe_name
    schedule = rx.dea_schedule(rxe, f"{name}-35")
    if schedule and not rx.dea_of(group.orc.repetitions(12), rxe.repetitions(13)):
        raise MappingError("is empty and ORC-12 names no DEA number: a controlled "
                           "substance needs the prescriber's DEA number", field=f"{name}-13")
    quantity = dt.to_fhir_decimal(rxe.value(10), f"{name}-10")
    if quantity is None or quantity <= 0:
        raise MappingError("is empty: a NewRx needs the quantity to dispense",
                           field=f"{name}-10")
    unit, unit_as_sent = rx.unit_code(dt.first_rep(rxe, 11))
    plans = schedules(group, offset)
    days = rx.days_supply(group, plans, quantity)
    if days is None:
        raise MappingError("gives no duration, and the days supply cannot be worked out "
                           "from TQ1-7/8 or from the dose, unit and frequency",
                           field="TQ1-6" if group.timings else f"{name}-1")
    refills = whole_number(rxe.value(12), f"{name}-12")
    return {
        "DrugDescription": rx.drug_description(rxe, f"{name}-2"),
        "DrugCoded": rx.drug_coded(rxe, facility, schedule),
        "Quantity": {"Value": rx.number(quantity), "CodeListQualifier": "38",
                     "QuantityUnitOfMeasure": {"Code": unit}},
        "DaysSupply": str(days),
        "WrittenDate": {"Date": _written(group)},
        "Substitutions": "1" if dt.present(rxe.value(9)) == "1" else "0",
        "NumberOfRefills": str(refills) if refills is not None else None,
        "Note": _note(group, unit_as_sent),
        "Sig": {"SigText": _sig(group, plans)[:MAX_SIG]},
    }


def _note(group: OrderGroup, unit_as_sent: str) -> str | None:
    """The unit as sent when it is Unspecified, then the order's NTE notes, in one Note
    of at most MAX_NOTE characters (cut with "...")."""
    parts = [f"Dispense unit as sent: {unit_as_sent}" if unit_as_sent else ""]
    parts += [v2_fhir.nte_text(nte).replace("\n", " ") for nte in group.notes]
    note = "; ".join(p for p in parts if p)
    return note[:MAX_NOTE - 3] + "..." if len(note) > MAX_NOTE else note or None


def _written(group: OrderGroup) -> str:
    for segment, number, field in ((group.rxe, 32, f"{group.rxe_name}-32"),
                                   (group.orc, 9, f"{group.orc_name}-9")):
        when = dt.to_fhir_date(segment.value(number), field)
        if when:
            if len(when) != 10:
                raise MappingError("is not a whole date", field=field)
            return when
    raise MappingError("is empty and so is RXE-32: a NewRx needs the date it was written",
                       field=f"{group.orc_name}-9")


def _text(reps) -> str:
    return "; ".join(t for t in (dt.present(r.value(2)) or dt.present(r.value(1))
                                 if len(r.components()) > 1 else dt.present(r.value(1))
                                 for r in reps) if t)


def _sig(group: OrderGroup, plans) -> str:
    rxe = group.rxe
    text = (_text(rxe.repetitions(21)) or _text(rxe.repetitions(7))
            or next((p.text for p in plans if p.text), ""))
    if text:
        return text
    pattern = next((p.timing["code"]["text"] for p in plans
                    if p.timing and p.timing.get("code")), "")
    route = dt.present(group.routes[0].value(1, 1)) if group.routes else ""
    dose = dt.present(rxe.value(3))
    unit = dt.present(rxe.value(5, 1))
    parts = [p for p in (dose, unit, route, pattern) if p]
    if not (dose and pattern):
        raise MappingError("is empty, and so are RXE-7 and TQ1-11: a NewRx needs "
                           "directions (Sig)", field=f"{group.rxe_name}-21")
    return " ".join(parts)
