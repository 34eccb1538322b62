"""One mapping for a mixed feed: the builder of each message type, chosen by MSH-9.1.

A type's builder is the module of its name here (`oru.build` for ORU); the list of types
is fixed, so a message never chooses which module is imported.
"""

from __future__ import annotations

import importlib

from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.mapping_base import Skip

TYPES = ("ADT", "BAR", "DFT", "REF", "MDM", "OMG", "OML", "ORM", "ORU", "OUL", "RDE",
         "RDS", "RAS", "RGV", "VXU", "SIU", "PPR")


def build(message: Hl7Message) -> dict | Skip:
    code = dt.present(message.segments[0].value(9, 1)).upper()
    if code not in TYPES:
        return Skip(f"{code if code.isalnum() and len(code) <= 3 else 'this message type'} "
                    "is not a message type this mapping reads")
    try:
        module = importlib.import_module(f"engine.maplib.v2_to_fhir.{code.lower()}")
    except ModuleNotFoundError:
        return Skip(f"{code} messages are not mapped by this version")
    return module.build(message)
