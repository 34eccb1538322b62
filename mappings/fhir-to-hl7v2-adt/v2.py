"""fhir-to-hl7v2-adt@2: a FHIR R4 Patient as an HL7 v2.5.1 ADT^A28 (add person) or
ADT^A31 (update person information); as @1, but a Bundle's timestamp is MSH-7.

What changed from @1: MSH-7 of a Bundle that carries Bundle.timestamp is that timestamp
(when the sender assembled the message or transaction), before the Patient's
meta.lastUpdated, which a server's stored resource carries from its last change, maybe
years before it is sent. MSH-10 hashes MSH-7, so it follows. Everything else is @1's.

Input: a Patient, or a Bundle of any type (transaction, batch, collection, searchset) that
holds one. A mapping gives one message per input, so of a Bundle with several Patients
only the first (in entry order) is mapped: split such Bundles upstream if every Patient
must go. A Bundle without a Patient fails naming Bundle.entry; any other resource fails
naming resourceType.

Choices a receiver will notice:
- Event: A28 when Patient.meta.versionId is absent or "1" (the server's first version of
  the person), else A31. MSH-9 is ADT^A28^ADT_A05 or ADT^A31^ADT_A05; EVN-1 the event,
  EVN-2 the message time.
- MSH-3 CONDUIT; MSH-4 from meta.source (Patient's, else the Bundle's; a URI becomes the
  HD's universal id of type URI); MSH-5/6 are left to the channel; MSH-11 P; MSH-12 2.5.1;
  MSH-18 UNICODE UTF-8 only when a value is not ASCII.
- MSH-7 is Bundle.timestamp (a Bundle's), else Patient.meta.lastUpdated, else
  Bundle.meta.lastUpdated, with its zone (Z is +0000). A Patient split out of a Bundle
  by its channel (`split:`) is mapped alone: its own lastUpdated, else the Bundle's time
  the splitter carried into it. Without any of them the mapping fails naming
  Patient.meta.lastUpdated: the time is never read from the clock, so the same resource
  always gives byte-identical messages.
- MSH-10 is 20 hex digits of SHA-256 over (Patient, id, versionId, MSH-7), and over the
  resource's canonical JSON when it has no id: a resent version keeps its control id (a
  receiver's duplicate check drops it), a new version gets a new one.
- PID (see `engine.maplib.fhir_to_v2`): PID-3 every identifier with a value (authority
  from the system: urn:oid: -> &OID&ISO, urn:conduit:id:X -> X, us-ssn -> SSA with type
  SS, any other URI -> &<uri>&URI; CX.5 from a v2-0203 type); PID-5 names with XPN.7
  from use (official L, usual D, maiden M, nickname N, old NOUSE, ...); PID-7 birth date;
  PID-8 sex (table 0001); PID-10/22 US Core race/ethnicity codes (CDCREC); PID-11
  addresses; PID-13 home, mobile and other numbers and email, PID-14 work ones
  (v2.5 XTN parts); PID-29/30 death. A Patient without an identifier fails naming
  Patient.identifier, as PID-3 is required.
- PV1|1|N: ADT_A05 requires a PV1, and a person event has no visit (class N, not
  applicable).
"""

from __future__ import annotations

from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import fhir_to_v2 as v2
from engine.mapping import mapping


@mapping("fhir-to-hl7v2-adt@2", accepts="fhir", emits="x-application/hl7-v2+er7")
def patient_to_adt(resource: dict) -> str:
    """One ADT^A28/A31 for the (first) Patient of the input."""
    patient = v2.focus(resource, v2.Resources(resource), "Patient", "person", "a Patient as ADT")
    meta = v2.meta(patient.resource)
    version = v2.text(meta.get("versionId"))
    event = "A28" if version in ("", "1") else "A31"
    bundle = v2.bundle_times(resource)  # Bundle.timestamp, Bundle.meta.lastUpdated
    first = bundle[:1] if bundle and bundle[0][0] is not None else []
    when = v2.message_time(
        *first,
        (meta.get("lastUpdated"), f"{patient.path}.meta.lastUpdated"),
        *bundle[len(first):],
    )
    header = v2.Header(
        facility=v2.source_facility(meta) or v2.source_facility(v2.meta(resource)),
        time=when,
        message_type=("ADT", event, "ADT_A05"),
        control_id=v2.resource_control_id(patient.resource, when),
    )
    builder = MessageBuilder()
    v2.write_msh(builder, header)
    builder.set("EVN-1", event)
    builder.set("EVN-2", when)
    v2.write_pid(builder, patient)
    builder.set("PV1-1", "1")
    builder.set("PV1-2", "N")
    return v2.encode(builder)
