"""HL7v2 clinical documents as FHIR: TXA codes, and OBX text and encapsulated data as
Attachments (the MDM mapping's building blocks).

Choices, written once:
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

from engine.errors import MappingError
from engine.formats.hl7v2 import Delimiters, Repetition, Segment, unescape
from engine.formats.hl7v2 import datatypes as dt

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
    """An ED value as an Attachment with its size and hash; None when it holds no data."""
    found = encapsulated_data(rep, field)
    return attachment(*found) if found is not None else None


def encapsulated_data(rep: Repetition, field: str) -> tuple[bytes, str] | None:
    """An ED value (source^type^subtype^encoding^data) as its bytes and MIME type; None
    when it holds no data.

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
    return _decode(data, encoding.upper(), field), mime_type(kind, subtype)


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
