"""MSH-7, the time the message was made, as the DTM every rule reads it as.

HL7v2 (2.3 to 2.8, chapter 2A DTM/TS) writes a time as YYYYMMDDHHMMSS[.S][+/-ZZZZ]. Some
senders (interface engines that re-serialise a JSON or FHIR source) put an ISO 8601 time
in MSH-7 instead: 2024-01-15T12:00:00-05:00. It is not a DTM, but it names one exact
instant, so a lenient conversion reads it as that DTM with one warning, and the Bundle
timestamp, the sender's zone and Provenance.recorded are kept. A strict conversion
refuses it as before. Only MSH-7 gets this: it gives the zone of every other field, and a
sender that writes ISO there writes DTMs elsewhere more often than not.
"""

from __future__ import annotations

import re

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,4})\d*)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?\Z"
)


def sent(message: Hl7Message) -> str:
    """MSH-7 as sent when it is a DTM (or empty, or unreadable either way), else the DTM
    its ISO 8601 form names, warned about at MSH-7."""
    raw = message.segments[0].value(7)
    value = dt.present(raw)
    match = _ISO.match(value)
    if not value or match is None:
        return raw
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    dtm = f"{year}{month}{day}{hour or ''}{minute or ''}{second or ''}"
    if fraction and second:
        dtm += f".{fraction}"
    if zone and hour:
        dtm += "+0000" if zone == "Z" else zone.replace(":", "")
    return tolerate(MappingError(
        "is an ISO 8601 date/time, not an HL7 DTM (YYYYMMDDHHMMSS+ZZZZ); read as the "
        "same time", field="MSH-7"), dtm)
