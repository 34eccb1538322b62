"""fhir-to-ncpdp-newrx: a FHIR R4 MedicationRequest as an NCPDP SCRIPT 2017071 NewRx,
for every version; each version's module states its choices and which switch it sets.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from engine.errors import MappingError
from engine.formats.ncpdp.build import message
from engine.maplib import fhir_to_ncpdp as out
from engine.maplib import ncpdp_fhir as ncpdp

DIAGNOSIS_QUALIFIERS = {"http://hl7.org/fhir/sid/icd-10-cm": "ABF",
                        "http://snomed.info/sct": "LD",
                        "http://hl7.org/fhir/sid/icd-9-cm": "DX"}
R = "MedicationRequest"


def request_to_newrx(resource: dict, *, term_types: bool = False) -> bytes:
    """The NewRx that orders what the MedicationRequest orders; `term_types`: the RxNorm
    code is chosen by its stated term type (@2), not the first (@1)."""
    found = out.Resources(resource, R)
    request = found.main
    patient = _needed(found.resolve(request.get("subject"), "Patient"), "subject")
    prescriber = _needed(found.resolve(request.get("requester"), "Practitioner"),
                         "requester")
    dispense = out.obj(request.get("dispenseRequest"))
    pharmacy = found.resolve(dispense.get("performer"), "Organization") or {}
    pharmacy_data = out.pharmacy(pharmacy)
    ncpdp_id = pharmacy_data["Identification"].get("NCPDPID", "")
    if not ncpdp_id:
        raise MappingError("names no pharmacy with an NCPDP id (SCRIPT addresses the "
                           "NewRx to it)", field=f"{R}.dispenseRequest.performer")
    authored = out.plain(request.get("authoredOn"))
    if not authored:
        raise MappingError("the request has no authoredOn (WrittenDate)",
                           field=f"{R}.authoredOn")
    medication = found.resolve(request.get("medicationReference"), "Medication")
    code = out.obj((medication or {}).get("code")) or out.obj(
        request.get("medicationCodeableConcept"))
    drug = out.drug(code, medication, term_types=term_types)
    if not drug["DrugDescription"]:
        raise MappingError("the request's drug has no description (code.text or a "
                           "coding's display: SCRIPT requires DrugDescription)",
                           field=f"{R}.medication[x]")
    order = _order(request)
    rid = out.plain(request.get("id")) or order[0]
    prescribed = {
        **drug,
        "Quantity": out.quantity(dispense.get("quantity")),
        "DaysSupply": _days(dispense.get("expectedSupplyDuration")),
        "WrittenDate": out.date(authored),
        "Substitutions": _substitutions(out.obj(request.get("substitution"))),
        "NumberOfRefills": out.plain(dispense.get("numberOfRepeatsAllowed")) or "0",
        "Diagnosis": _diagnoses(request.get("reasonCode")),
        "Note": " ".join(out.plain(n.get("text")) for n in out.items(request.get("note"))
                         if out.plain(n.get("text"))),
        "Sig": out.sig(next(iter(out.items(request.get("dosageInstruction"))), {})),
    }
    body = {"NewRx": {"Patient": out.patient(patient), "Pharmacy": pharmacy_data,
                      "Prescriber": out.prescriber(
                          prescriber, veterinarian=out.species(patient) is not None),
                      "MedicationPrescribed": prescribed}}
    try:
        return message(body, to=(ncpdp_id, "P"), sender=(order[1] or "CONDUIT", "C"),
                       message_id=hashlib.sha256(rid.encode()).hexdigest()[:32],
                       sent=_sent(authored), prescriber_order_number=order[0])
    except ValueError as exc:
        raise MappingError(str(exc), field=R) from None


def _needed(found: dict | None, element: str) -> dict:
    if found is None:
        raise MappingError(f"the request's {element} is not in the input",
                           field=f"{R}.{element}")
    return found


def _order(request: dict) -> tuple[str, str]:
    """(PrescriberOrderNumber, the system that assigned it)."""
    ids = out.items(request.get("identifier"))
    placer = next((i for i in ids if i.get("system") == ncpdp.ID_LOCAL
                   + "PrescriberOrderNumber"), None) or next(
        (i for i in ids if any(c.get("code") == "PLAC" for c in out.items(
            out.obj(i.get("type")).get("coding")))), None) or next(
        (i for i in sorted(ids, key=lambda i: i.get("use") != "official")
         if i.get("system") != ncpdp.ID_LOCAL + "MessageID"
         and 0 < len(out.plain(i.get("value"))) <= 35), None)
    if placer is None or not out.plain(placer.get("value")):
        rid = out.plain(request.get("id"))
        return (rid if len(rid) <= 35 else hashlib.sha256(rid.encode()).hexdigest()[:32]), ""
    return out.plain(placer.get("value")), out.plain(out.obj(placer.get("assigner")).get(
        "display"))


def _sent(authored: str) -> str:
    try:
        if "T" not in authored:
            moment = datetime.fromisoformat(authored[:10]).replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(authored.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError("authoredOn is not a date", field=f"{R}.authoredOn") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _days(duration: Any) -> str:
    found = out.obj(duration)
    return out.plain(found.get("value")) if found.get("code", "d") == "d" else ""


def _substitutions(substitution: dict) -> str:
    allowed = substitution.get("allowedBoolean")
    if isinstance(allowed, bool):
        return "0" if allowed else "1"
    coding = next(iter(out.items(out.obj(substitution.get("allowedCodeableConcept")).get(
        "coding"))), {})
    if coding.get("system") == ncpdp.CODE_LOCAL + "Substitutions":
        return out.plain(coding.get("code"))
    return "0"


def _diagnoses(reasons: Any) -> list[dict[str, Any]]:
    codes = []
    for reason in out.items(reasons):
        coding = next(iter(out.items(reason.get("coding"))), {})
        system = out.plain(coding.get("system"))
        qualifier = DIAGNOSIS_QUALIFIERS.get(system) or (
            system[len(ncpdp.CODE_LOCAL):] if system.startswith(ncpdp.CODE_LOCAL) else "")
        if qualifier and out.plain(coding.get("code")):
            codes.append({"Code": out.plain(coding.get("code")), "Qualifier": qualifier,
                          "Description": out.plain(coding.get("display"))
                          or out.plain(reason.get("text"))})
    return [{"ClinicalInformationQualifier": "1", "Primary": codes[i],
             "Secondary": codes[i + 1] if i + 1 < len(codes) else None}
            for i in range(0, len(codes), 2)]
