"""The Codec contract: everything the engine asks of a message standard.

One implementation per standard (engine.formats.hl7v2, engine.formats.fhir; X12 and
NCPDP next), registered by name in engine.registry.CODECS. The channel, the runtime, the
test bench, the CLI, the config checks, the structural diff and (through what the
runtime hands them) the connectors ask a codec; none of them names a standard. A
standard's codes, error texts, envelopes and file habits live in its codec and nowhere
else.

The contract is a runtime-checkable `typing.Protocol`, so `isinstance(codec, Codec)`
checks that every member is there (tests/unit/test_codec_contract.py does, for every
registered codec), and a type checker checks the signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from engine.message import Delivery, Outbound, Outcome, Parsed, Problem, ProblemKind

if TYPE_CHECKING:
    from engine.formats.diff import Change


def opening(raw: bytes, size: int) -> bytes:
    """The first `size` bytes after a byte-order mark and white space (MLLP's start byte
    included), as `detect` looks at them."""
    return raw.lstrip(b"\xef\xbb\xbf \t\r\n\x0b")[:size]


class Envelope(Protocol):
    """Several messages that arrived as one (an HL7 batch or file, later an X12
    interchange), as the codec's `split` found them."""

    @property
    def messages(self) -> Sequence[bytes]:
        """Each message's bytes, in order, to be taken on as if it had come alone."""
        ...

    @property
    def problems(self) -> Sequence[Problem]:
        """What is wrong with the envelope itself (counts that disagree with what
        arrived): when there are any, the whole envelope is refused."""
        ...


@runtime_checkable
class Codec(Protocol):
    """A message standard: bytes in, `Parsed` out, and the answers both ways."""

    name: str
    """The `format:` of a channel and `Parsed.standard` ("hl7v2", "fhir")."""

    content_type: str
    """The media type of this standard's messages, so outputs find their codec (and a
    destination the codec that reads its receiver's replies)."""

    extensions: tuple[str, ...]
    """File extensions of this standard's messages, the default first (".hl7"): fixture
    files, files written by the file destination."""

    streams: bool
    """Whether `split` takes a large file as a read-only buffer (an mmap a source hands
    over) and reads it piece by piece; other codecs are given the file as bytes."""

    def detect(self, raw: bytes) -> bool:
        """Whether these bytes look like this standard, from their first bytes only (cheap;
        `conduit parse` and `ack` use it to pick the codec of a message file)."""
        ...

    def file_messages(self, raw: bytes) -> list[bytes]:
        """The messages of a file as the tools read it (`conduit parse`, `ack`, `map`,
        `test`): forgiving of line endings, envelope dropped; one for most standards."""
        ...

    def split(self, raw: bytes) -> Envelope | None:
        """The messages of an envelope, or None when `raw` is one message (also for every
        standard without envelopes). Cheap enough to call on every inbound message; raises
        ParseError only when the envelope's header itself is unreadable."""
        ...

    def envelope_reply(self, envelope: Envelope, replies: Sequence[bytes]) -> bytes:
        """The one answer to an envelope, from each message's `reply` in order (b"" where
        a message wanted none)."""
        ...

    def parse(self, raw: bytes) -> Parsed:
        """The routing fields (type, control id, sender, patient) and the standard's own
        body; raises ParseError naming where, in the standard's terms."""
        ...

    def require(self, must_have: Mapping[str, Sequence[str]]) -> None:
        """Elements a channel requires beyond the standard (a source's `required:`),
        checked by `validate`; a standard without such a notion ignores them."""
        ...

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        """Structure problems under "lenient" or "strict"; never on the routing path."""
        ...

    def field(self, parsed: Parsed, path: str) -> str:
        """One value by the standard's own path ("PID-3.1", "identifier.0.value"), for
        filters and routing; "" when absent."""
        ...

    def field_path_error(self, path: str) -> str | None:
        """Why `path` can never be a field path of this standard (for `conduit validate`),
        or None when it can."""
        ...

    def problem(self, kind: ProblemKind, text: str) -> Problem:
        """A problem the engine itself found (not the standard's parser), with the code of
        this standard's vocabulary that says it, so the channel never writes a code."""
        ...

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """The answer to one message right after the durable commit (b"" when the sender
        asked for none); `parsed` is None when it did not parse. Also what goes into an
        envelope's reply for this message."""
        ...

    def replies(self, raw: bytes, parsed: Parsed | None, outcome: Outcome
                ) -> tuple[bytes, ...]:
        """Every answer the sender asked for, in order (HL7's enhanced mode may want a
        commit and an application acknowledgement); empty ones left out."""
        ...

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        """What a receiving system's answer to `sent` means for the queue."""
        ...

    def diff(self, a: bytes, b: bytes) -> list[Change]:
        """Differences between two messages by the standard's paths, not by bytes
        (`conduit test`, `conduit mapping diff`, shadow mode)."""
        ...
