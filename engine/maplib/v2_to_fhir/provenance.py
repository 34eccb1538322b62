"""EVN and MSH as a Provenance: which system sent the facts of this message, when, and
for which event, targeting every resource the message made."""

from __future__ import annotations

from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_to_fhir.frame import Build

_V2_0003 = "http://terminology.hl7.org/CodeSystem/v2-0003"
_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def provenance(b: Build) -> dict | None:
    """The Provenance of the message, keyed on its control id (a resend updates it), or
    None when the message made nothing or says neither when (EVN-2, MSH-7, as an
    instant: Provenance.recorded is required) nor under which control id (MSH-10)."""
    targets = [b.ref(r) for r in b.resources() if r["resourceType"] != "Provenance"]
    msh = b.message.segments[0]
    control = dt.present(msh.value(10))
    recorded = (dt.to_fhir_instant(b.message.value("EVN-2"), "EVN-2", b.offset)
                or dt.to_fhir_instant(msh.value(7), "MSH-7", b.offset))
    if not targets or not control or not recorded:
        return None
    key = {"system": f"urn:conduit:msh:{b.facility}", "value": control}
    application = dt.present(msh.value(3, 1))
    return compact({
        "resourceType": "Provenance",
        "id": resource_id("Provenance", b.facility, key),
        "target": targets,
        "recorded": recorded,
        "activity": compact({"coding": [{"system": _V2_0003, "code": b.event}]})
        if b.event else None,
        "agent": [{
            "type": {"coding": [{"system": _AGENT_TYPE, "code": "author"}]},
            "who": {"display": " ".join(p for p in (application, b.facility) if p)},
        }],
    })
