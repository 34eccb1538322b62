"""MSH-7 (the time the message was made) and PID-7 (birth date) as the DTM every rule
reads them as.

HL7v2 (2.3 to 2.8, chapter 2A DTM/TS) writes a time as YYYYMMDDHHMMSS[.S][+/-ZZZZ]. Some
senders (interface engines that re-serialise a JSON or FHIR source) write ISO 8601
instead: 2024-01-15T12:00:00-05:00, 1990-07-04. It is not a DTM, but it names one exact
time or day, so a lenient conversion reads it as that DTM with one warning: the Bundle
timestamp, the sender's zone, Provenance.recorded and the birth date are kept. A strict
conversion refuses it as before. Only these two fields get this: MSH-7 gives the zone of
every other field, and a birth date is what a patient is matched on.
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
    """MSH-7 as a DTM (`as_dtm`)."""
    return as_dtm(message.segments[0].value(7), "MSH-7")


def as_dtm(raw: str, field: str) -> str:
    """`raw` as sent when it is a DTM (or empty, or unreadable either way), else the DTM
    its ISO 8601 form names, warned about at `field`."""
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
        "same time", field=field), dtm)
