"""One exception tree for the whole engine.

    ConduitError
    ├── ConfigError          a configuration file is wrong: file, line, column, field path
    │   └── ConfigErrors     several ConfigErrors found in one pass, reported together
    ├── ParseError           a message is not what its standard says: segment and field
    ├── MappingError         a mapping could not produce its output: which field and why
    ├── StoreError           the message or audit store cannot be used
    │   └── AuditChainBroken the audit hash chain does not verify: first broken event
    ├── KeyError_            encryption keys are missing or unreadable
    └── DeliveryError        a destination was misused (not an outcome: outcomes are Delivery)

Every message here is read by a person: it says what was wrong, where, and what to do,
and never carries message content or patient identifiers (those stay in the encrypted
store; errors name message ids, segments and fields).
"""

from __future__ import annotations


class ConduitError(Exception):
    """Base of every error the engine raises on purpose."""


def path_error(doing: str, exc: OSError) -> ConduitError:
    """An operating system error on a path, as one line for a person (`cannot read the
    export: q4.audit: No such file or directory`) instead of a traceback: a missing file or
    a folder given for a file is an ordinary mistake, not an engine fault."""
    where = f": {exc.filename}" if exc.filename is not None else ""
    return ConduitError(f"cannot {doing}{where}: {exc.strerror or exc}")


class ConfigError(ConduitError):
    """A configuration value is wrong; located by file, line, column and field path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ConfigErrors(ConduitError):
    """Every configuration error found in one pass, so an analyst fixes them in one go."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file or "", e.line or 0, e.col or 0))
        super().__init__("\n".join(str(e) for e in self.errors))


class ParseError(ConduitError):
    """A message does not follow its standard.

    `code` is the standard's own error code where it has one (HL7 table 0357: 100 segment
    sequence error, 101 required field missing, 102 data type error, 200 unsupported
    message type, 203 unsupported version, 207 application internal error ...).
    """

    def __init__(
        self,
        message: str,
        *,
        segment: str | None = None,
        field: int | None = None,
        code: str = "207",
    ) -> None:
        self.message = message
        self.segment = segment
        self.field = field
        self.code = code
        super().__init__(str(self))

    @property
    def location(self) -> str:
        if self.segment and self.field is not None:
            return f"{self.segment}-{self.field}"
        return self.segment or ""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class MappingError(ConduitError):
    """A mapping could not produce its output; names the input field, never its value."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class StoreError(ConduitError):
    """The message, queue or audit store cannot be used."""


class AuditChainBroken(StoreError):
    """The audit trail's hash chain does not verify at `seq`."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit chain broken at event #{seq}: {reason}")


class KeyError_(ConduitError):
    """Encryption or pseudonym keys are missing, unreadable or too open."""


class DeliveryError(ConduitError):
    """A destination was used wrongly (not opened, closed twice); never a send outcome."""
