"""Times sent with a time of day but no zone anywhere, read in the engine's own zone.

US Core requires instants (Provenance.recorded, a final lab report's issued time) that a
sender without zones cannot give. Such a sender is most often in the engine's region, so
its local time is read in the host's zone at that date (summer time counts), with a
warning naming the zone assumed. `conduit test` runs in UTC (engine.testbench), so that
expected outputs hold on every machine.
"""

from __future__ import annotations

from datetime import datetime

from engine.errors import MappingError
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate


def assumed_instant(candidates: list[tuple[str, str]], element: str, *,
                    name_the_rest: bool = False) -> str | None:
    """The first (value, field) of `candidates` with a time of day, as an instant in the
    engine's zone, warned about at its field; `name_the_rest` says in the warning that
    the later fields had no zone either. None when none has a time of day."""
    for index, (value, field) in enumerate(candidates):
        local = dt.to_fhir_datetime(value, field, "+0000")
        if not local or "T" not in local:
            continue
        offset = datetime.fromisoformat(local[:19]).astimezone().strftime("%z")
        rest = [later for _, later in candidates[index + 1:]]
        said = "has no time zone" + (f" (nor has {', '.join(rest)})"
                                     if name_the_rest and rest else "")
        return tolerate(MappingError(
            f"{said}; {element} assumes the engine's zone, UTC{offset[:3]}:{offset[3:]}",
            field=field), dt.to_fhir_instant(value, field, offset))
    return None
