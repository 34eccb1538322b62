"""HL7v2 clinical documents as FHIR: TXA codes, OBX text and encapsulated data as
Attachments, plus the coded-value, entity-identifier and visit-reference helpers that
any v2-to-FHIR mapping needs (MDM and RDE use them today).

The general helpers (`codeable_concept`, `code_system`, `ei_to_identifier`,
`encounter_reference`, `decimal`) belong with `datatypes` / `v2_fhir`; they live here
until those shared modules take them, so that no other mapping's output changes now.

Choices, written once:
- A CWE's coding system (CWE.3, table 0396) becomes its well-known URI (LN → LOINC,
  SCT → SNOMED CT, NDC, RXNORM, UCUM, HL7nnnn → terminology.hl7.org v2-nnnn, a known OID).
  Anything else is the sender's own code system: `urn:conduit:code:<facility>:<name>`
  (`local` when CWE.3 is empty), stable per sender, never a guessed standard system;
  this is the form `v2_orders.cwe_to_codeable_concept` writes too, free-text rule
  included, so a code reads the same from every feed.
- Document text (OBX-2 TX, FT, ST) keeps every line: each OBX and each OBX-5 repetition
  is a line, an OBX with an empty value is a blank line, `\\.br\\` ends a line and
  `\\.sp\\` adds blank lines, other formatting commands carry no text and are dropped.
  It is sent as UTF-8, so its content type says so: `text/plain; charset=utf-8`.
- Encapsulated data (OBX-2 ED) is decoded (Base64, Hex, or A for plain text) and
  re-encoded as canonical Base64, so a receiver always gets valid base64Binary; the
  content type comes from ED.2 type of data and ED.3 subtype (application/pdf, text/rtf,
  image/jpeg, ...). Every attachment also carries its size and SHA-1 hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import Delimiters, Hl7Message, Repetition, Segment, unescape
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import resource_id

# ---- coded values (CWE / CE / IS) -------------------------------------------------------

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
NDC = "http://hl7.org/fhir/sid/ndc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
V2_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-"
LOCAL_CODE_PREFIX = "urn:conduit:code:"

# Table 0396 coding system names (and vendor spellings of them) -> code system URI.
CODE_SYSTEMS: dict[str, str] = {
    "LN": LOINC,
    "LOINC": LOINC,
    "SCT": SNOMED,
    "SCT2": SNOMED,
    "SNOMED": SNOMED,
    "SNOMEDCT": SNOMED,
    "SNOMED-CT": SNOMED,
    "SNM": SNOMED,  # SNOMED International (v2.3 era); today's senders mean SNOMED CT
    "SNM3": SNOMED,
    "NDC": NDC,
    "RXNORM": RXNORM,
    "RXN": RXNORM,
    "UCUM": UCUM,
    "ANS+": UCUM,  # the v2.5 name of UCUM in table 0396
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CM": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CDX": "http://hl7.org/fhir/sid/icd-9-cm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
}
# The same systems when a sender names them by OID.
CODE_SYSTEM_OIDS: dict[str, str] = {
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.96": SNOMED,
    "2.16.840.1.113883.6.69": NDC,
    "2.16.840.1.113883.6.88": RXNORM,
    "2.16.840.1.113883.6.8": UCUM,
}
_HL7_TABLE = re.compile(r"HL7-?(\d{4})\Z")
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9]\d*))+\Z")


def code_system(name: str, facility: str) -> str:
    """The Coding.system for a CWE.3 coding system name; a local one is scoped to the
    sending facility, because two senders' local codes are not the same codes."""
    name = dt.present(name)
    upper = name.upper().replace(" ", "")
    if upper in CODE_SYSTEMS:
        return CODE_SYSTEMS[upper]
    table = _HL7_TABLE.match(upper)
    if table:
        return V2_SYSTEM + table[1]
    if _OID.match(name):
        return CODE_SYSTEM_OIDS.get(name, f"urn:oid:{name}")
    scope, local = quote(facility, safe="-._~"), quote(name or "local", safe="-._~")
    return f"{LOCAL_CODE_PREFIX}{scope}:{local}"


def coding(
    code: str, display: str, system_name: str, facility: str, version: str = ""
) -> dict | None:
    """One Coding from code, display, CWE coding system name and version; None without
    a code."""
    code = dt.present(code)
    if not code:
        return None
    result = {"system": code_system(system_name, facility)}
    version = dt.present(version)
    if version:
        result["version"] = version
    result["code"] = code
    display = dt.present(display)
    if display:
        result["display"] = display
    return result


def codeable_concept(rep: Repetition, facility: str) -> dict | None:
    """A CWE/CE as a CodeableConcept: the identifier triplet (with CWE.7 version) and the
    alternate triplet (CWE.8) as codings, original text (CWE.9) as text; text alone when
    no code was sent, or when the only component is words, which old senders put in the
    code's place ("Take with food" is text, not a code)."""
    if len(rep.components()) == 1 and " " in dt.present(rep.value(1)):
        return {"text": dt.present(rep.value(1))}
    codings = [
        c
        for c in (
            coding(rep.value(1), rep.value(2), rep.value(3), facility, rep.value(7)),
            coding(rep.value(4), rep.value(5), rep.value(6), facility, rep.value(8)),
        )
        if c
    ]
    text = dt.present(rep.value(9))
    if not codings:
        text = text or dt.present(rep.value(2)) or dt.present(rep.value(5))
    concept: dict = {}
    if codings:
        concept["coding"] = codings
    if text:
        concept["text"] = text
    return concept or None


def first_concept(segment: Segment, field: int, facility: str) -> dict | None:
    """The first repetition of a CWE field as a CodeableConcept, or None."""
    reps = segment.repetitions(field)
    return codeable_concept(reps[0], facility) if reps else None


# ---- message type -----------------------------------------------------------------------

_EVENT_CODE = re.compile(r"[A-Z0-9]{1,8}\Z")


def trigger_event(message: Hl7Message, message_code: str) -> str:
    """The trigger event of a message that must be of type `message_code` (MSH-9.1), from
    MSH-9.2, or EVN-1 for old senders that leave it out; fails naming MSH-9 otherwise."""
    msh = message.segments[0]
    if dt.present(msh.value(9, 1)).upper() != message_code:
        raise MappingError(
            f"message type is not {message_code}; this mapping reads {message_code} only",
            field="MSH-9",
        )
    event = (dt.present(msh.value(9, 2)) or dt.present(message.value("EVN-1"))).upper()
    if not event:
        raise MappingError("has no trigger event (and EVN-1 is empty)", field="MSH-9")
    return event if _EVENT_CODE.match(event) else "(unrecognised event)"


# ---- identifiers, numbers, visits -------------------------------------------------------


def ei_to_identifier(rep: Repetition, facility: str) -> dict | None:
    """An EI (entity identifier) as a FHIR Identifier; None without an id.

    The system comes from the assigning authority (EI.2-4, see `datatypes.hd_system`);
    without one the id was assigned by the sender, so its facility scopes it, as for CX.
    """
    value = dt.present(rep.value(1))
    if not value:
        return None
    system = dt.hd_system(rep.value(2), rep.value(3), rep.value(4)) or dt.hd_system(facility)
    return {"system": system, "value": value}


def first_identifier(segment: Segment, field: int, facility: str) -> dict | None:
    """The first repetition of an EI field that holds an id, as an Identifier."""
    for rep in segment.repetitions(field):
        identifier = ei_to_identifier(rep, facility)
        if identifier:
            return identifier
    return None


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)\Z")


def decimal(value: str, field: str) -> int | float | None:
    """A v2 NM as a JSON number (an int when whole, so "500" stays 500); None when empty.

    Raises MappingError naming `field` for anything that is not a number: a dose that
    cannot be read must reach an analyst, not become zero.
    """
    value = dt.present(value)
    if not value:
        return None
    if not _NUMBER.match(value):
        raise MappingError("is not a number", field=field)
    number = float(value)
    return int(number) if number.is_integer() and "." not in value else number


_VISIT_NUMBER_TYPE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "VN",
            "display": "Visit number",
        }
    ]
}


def encounter_reference(message: Hl7Message, facility: str) -> dict | None:
    """A reference to the Encounter that hl7v2-adt-to-fhir made for PV1-19, or None.

    The id is derived exactly as `v2_fhir.encounter` derives it, so it is the ADT feed's
    Encounter; the reference is literal (`Encounter/<id>`), since this message does not
    carry the Encounter, and holds the visit number too, for a receiver to search by.
    """
    pv1 = message.segment("PV1")
    if pv1 is None:
        return None
    for rep in pv1.repetitions(19):
        visit = dt.cx_to_identifier(rep, facility)
        if visit:
            visit.setdefault("type", _VISIT_NUMBER_TYPE)
            return {
                "reference": f"Encounter/{resource_id('Encounter', facility, visit)}",
                "identifier": visit,
            }
    return None


def display_reference(rep: Repetition | None) -> dict | None:
    """An XCN/PPN person as a Reference with a display name only, or None."""
    if rep is None:
        return None
    name = dt.xcn_display(rep)
    return {"display": name} if name else None


def first_rep(segment: Segment, field: int) -> Repetition | None:
    reps = segment.repetitions(field)
    return reps[0] if reps else None


# ---- document codes (TXA) ---------------------------------------------------------------

# Table 0271 document completion status -> DocumentReference.docStatus. Only an
# authenticated document is final; everything still being written or signed is
# preliminary. A code outside the table is left out rather than guessed.
DOC_STATUS: dict[str, str] = {
    "AU": "final",  # authenticated
    "DO": "final",  # documented
    "LA": "final",  # legally authenticated
    "DI": "preliminary",  # dictated
    "IN": "preliminary",  # incomplete
    "IP": "preliminary",  # in progress
    "PA": "preliminary",  # pre-authenticated
}

# Table 0272 document confidentiality status -> securityLabel (v3 Confidentiality).
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CONFIDENTIALITY: dict[str, tuple[str, str]] = {
    "V": ("V", "very restricted"),
    "R": ("R", "restricted"),
    "U": ("N", "normal"),  # usual control
}


def security_label(segment: Segment, field: int) -> list[dict]:
    """TXA-18 confidentiality as a v3 Confidentiality security label (or none)."""
    code = dt.present(segment.value(field)).upper()
    if code not in CONFIDENTIALITY:
        return []
    fhir_code, display = CONFIDENTIALITY[code]
    return [{"coding": [{"system": V3_CONFIDENTIALITY, "code": fhir_code, "display": display}]}]


# ---- document content (OBX) -------------------------------------------------------------

TEXT_TYPES = frozenset({"TX", "FT", "ST", "TEXT", ""})
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


def formatted_text(raw: str, d: Delimiters) -> str:
    """Decode one FT/TX value sent as raw text: escapes as usual, formatting commands
    (`\\.br\\`, `\\.sp n\\`, `\\.ce\\`, ...) as line breaks or nothing.

    Reads the raw repetition, components included, so a stray component separator in
    free text stays text instead of cutting the line short.
    """
    esc = d.escape
    if not esc or esc not in raw:
        return unescape(raw, d)
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        start = raw.find(esc, pos)
        end = raw.find(esc, start + 1) if start >= 0 else -1
        if start < 0 or end < 0:
            out.append(unescape(raw[pos:], d))
            break
        out.append(unescape(raw[pos:start], d))
        sequence = raw[start + 1 : end]
        out.append(
            _format_command(sequence)
            if sequence.startswith(".")
            else unescape(raw[start : end + 1], d)
        )
        pos = end + 1
    return "".join(out)


_SKIP_LINES = re.compile(r"\.sp\s*(\d*)\Z")


def _format_command(sequence: str) -> str:
    """The text a formatting command stands for: .br and .ce end the line, .sp n ends it
    and skips n lines (one when n is absent); indents and fill modes carry no text."""
    if sequence in (".br", ".ce"):
        return "\n"
    skip = _SKIP_LINES.match(sequence)
    if skip:
        return "\n" * (1 + int(skip[1] or 1))
    return ""


def text_lines(obx: Segment, d: Delimiters) -> list[str]:
    """The lines of one text OBX: one per OBX-5 repetition, one blank line when empty."""
    raw = obx.raw(5)
    if dt.present(raw) == "":
        return [""]
    return [formatted_text(rep, d) for rep in raw.split(d.repetition)]


def text_attachment(lines: list[str]) -> dict | None:
    """The text lines as one UTF-8 attachment, or None when they hold nothing."""
    text = "\n".join(lines).strip("\n")
    if not text.strip():
        return None
    return attachment(text.encode("utf-8"), TEXT_CONTENT_TYPE)


def attachment(data: bytes, content_type: str) -> dict:
    """An Attachment with the data inline, its size and its SHA-1 hash (both base64 as
    FHIR requires), so a receiver can check it arrived whole."""
    return {
        "contentType": content_type,
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
    }


# Table 0299 encoding.
_ENCODINGS = frozenset({"BASE64", "HEX", "A"})

# Table 0291 data subtype -> MIME type.
SUBTYPE_MIME: dict[str, str] = {
    "PDF": "application/pdf",
    "RTF": "text/rtf",
    "HTML": "text/html",
    "XML": "application/xml",
    "SGML": "text/sgml",
    "JPEG": "image/jpeg",
    "JPG": "image/jpeg",
    "GIF": "image/gif",
    "PNG": "image/png",
    "TIFF": "image/tiff",
    "TIF": "image/tiff",
    "DICOM": "application/dicom",
    "POSTSCRIPT": "application/postscript",
    "OCTET-STREAM": "application/octet-stream",
    "BASIC": "audio/basic",
    "MSWORD": "application/msword",
    "DOC": "application/msword",
    "DOCX": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "PLAIN": "text/plain",
}
_MIME_TOP_LEVEL = frozenset({"application", "audio", "image", "model", "text", "video"})
_MIME_TOKEN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*\Z")


def mime_type(type_of_data: str, subtype: str) -> str:
    """The MIME type of an ED from its type of data (table 0191) and subtype (0291).

    Known subtypes map through the table; a sender that writes MIME itself (type
    "application", subtype "pdf", or subtype "application/pdf") is taken at its word;
    anything else is application/octet-stream, which is true of any bytes.
    """
    kind, sub = dt.present(type_of_data).lower(), dt.present(subtype).lower()
    if sub.upper() in SUBTYPE_MIME:
        return SUBTYPE_MIME[sub.upper()]
    if "/" in sub:
        top, _, rest = sub.partition("/")
        if top in _MIME_TOP_LEVEL and _MIME_TOKEN.match(rest):
            return sub
    if kind in _MIME_TOP_LEVEL and _MIME_TOKEN.match(sub):
        return f"{kind}/{sub}"
    if kind in ("text", "tx", "ft") and not sub:
        return "text/plain"
    return "application/octet-stream"


def encapsulated_attachment(rep: Repetition, field: str) -> dict | None:
    """An ED value (source^type^subtype^encoding^data) as an Attachment; None when empty.

    Also reads the common variant without the source application component
    (type^subtype^encoding^data). Raises MappingError naming `field` when the encoding
    is unknown or the data does not decode.
    """
    parts = [rep.value(i) for i in range(1, 6)]
    if dt.present(parts[3]).upper() not in _ENCODINGS and (
        dt.present(parts[2]).upper() in _ENCODINGS
    ):
        parts = ["", *parts[:4]]
    _, kind, subtype, encoding, data = (dt.present(p) for p in parts)
    if not data:
        return None
    return attachment(_decode(data, encoding.upper(), field), mime_type(kind, subtype))


def _decode(data: str, encoding: str, field: str) -> bytes:
    """The bytes of ED data in its declared encoding (table 0299)."""
    if encoding == "A":
        return data.encode("utf-8")
    compact = "".join(data.split())
    try:
        if encoding == "BASE64":
            return base64.b64decode(compact, validate=True)
        if encoding == "HEX":
            return bytes.fromhex(compact)
    except (binascii.Error, ValueError):
        raise MappingError(
            f"holds encapsulated data that is not valid {encoding.title()}", field=field
        ) from None
    raise MappingError(
        "holds encapsulated data in an unknown encoding (expected Base64, Hex or A)",
        field=field,
    )
