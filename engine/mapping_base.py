"""What a mapping is: `Mapping` (a pure function registered as `name@version`, and how
its result becomes bytes), `Skip` (deliberately nothing) and the `name@version` form.

Import these from `engine.mapping`, which declares and discovers mappings and
re-exports them. They stand alone because both sides build on them: `engine.mapping`
loads `v<N>.yaml` files through `engine.declarative`, and the declarative loader makes
`Mapping`s and its guards return `Skip`; one module holding all of it was an import loop
(engine.mapping -> engine.declarative -> engine.mapping).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import MappingError
from engine.leniency import Note

# Decimals are written as JSON numbers with their digits: a FHIR decimal's precision is
# meaningful ("7.20" is not "7.2"), and the FHIR codec decodes numbers as Decimals.
_encode = msgspec.json.Encoder(decimal_format="number").encode
MAPPING_REF = re.compile(r"(?P<name>[a-z0-9][a-z0-9-]*)@(?P<version>\d+)\Z")


class Skip(msgspec.Struct, frozen=True):
    """Returned by a mapping that deliberately produces nothing for this message."""

    reason: str


class Mapped(msgspec.Struct, frozen=True):
    """An output with what its conversion could not read (`warnings`, located, never
    quoting values) and the fields that held a value no rule read (`left_behind`, e.g.
    `PV1-39`, `OBX[3]-17`). A mapping function may return one instead of a bare output;
    `Mapping.run` always gives one, its output encoded as bytes."""

    output: Any
    warnings: tuple[Note, ...] = ()
    left_behind: tuple[str, ...] = ()
    # Whether the conversion kept track of what it read (the HL7v2 to FHIR builders do,
    # engine.maplib.v2_conversion); without it an empty `left_behind` says nothing.
    tracked: bool = False


class Mapping(msgspec.Struct, frozen=True):
    name: str
    version: int
    accepts: str  # codec name of the input, e.g. "hl7v2"
    emits: str  # content type of the output, e.g. "application/fhir+json"
    func: Callable[[Any], Any]
    file: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def apply(self, body: Any) -> bytes | Skip:
        """The output of `run`, without its warnings and what it left behind."""
        result = self.run(body)
        return result if isinstance(result, Skip) else result.output

    def run(self, body: Any) -> Mapped | Skip:
        """Run the mapping; dicts and lists become JSON (a Decimal as a number with the
        digits it holds). Raises MappingError on failure,
        including for an unexpected exception in the mapping, which it names."""
        try:
            result = self.func(body)
        except MappingError:
            raise
        except Exception as exc:  # a bug in a mapping must not stop the channel
            raise MappingError(
                f"mapping {self.ref} raised {type(exc).__name__} "
                f"at {_where(exc)}"
            ) from exc
        if isinstance(result, Skip):
            return result
        if isinstance(result, Mapped):
            return msgspec.structs.replace(result, output=self._encode(result.output))
        return Mapped(self._encode(result))

    def _encode(self, result: Any) -> bytes:
        if isinstance(result, bytes):
            return result
        if isinstance(result, str):
            return result.encode("utf-8")
        if isinstance(result, dict | list):
            return _encode(result)
        raise MappingError(
            f"mapping {self.ref} returned {type(result).__name__}; "
            "expected a dict, list, str, bytes or Skip"
        )


def _where(exc: BaseException) -> str:
    """File and line of the innermost frame, without the exception's text (which may
    quote message content)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "unknown location"
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
