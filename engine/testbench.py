"""The analyst's test bench: what a message is, what the engine would answer, what a
mapping makes of it, and whether every fixture still gives what it should.

Pure and offline: nothing here opens a socket or touches the store, so analysts run it
in their own CI against the same files the daemon would load.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from engine import registry
from engine.errors import MappingError, ParseError
from engine.formats.base import Codec, opening
from engine.formats.diff import Change
from engine.mapping import MappingCatalog
from engine.mapping_base import Mapped, Mapping, Skip
from engine.message import Outcome, Parsed, Problem, Verdict
from engine.pipeline.filters import Filter
from engine.structdiff import diff_outputs

# Input file extensions by codec (each codec's default), and expected-outcome files.
INPUT_EXT = {name: factory().extensions[0] for name, factory in registry.CODECS.items()}
OUTCOME_EXT = (".skip", ".error", ".filtered", ".rejected")
# The commonest feed: bytes no codec recognises are read by it, whose parser says
# precisely what is wrong ("does not start with an MSH segment"), and answered in its
# vocabulary.
FALLBACK = next(iter(registry.CODECS))
detect = registry.detect  # the standard a message is written in, from its first bytes


def run_in_utc() -> None:
    """Expected outputs are written as if the engine ran in UTC: a time sent without any
    zone is read in the engine's zone (maplib.v2_to_fhir.engine_zone), which must not make
    a fixture pass on one machine and fail on another."""
    os.environ["TZ"] = "UTC"
    time.tzset()


def codec_for(standard: str) -> Codec:
    factory = registry.CODECS.get(standard)
    if factory is None:
        raise ParseError(f"this looks like {standard.upper()}, which this engine does not "
                         "read yet", code="200")
    return factory()


def validation_problems(parsed: Parsed, level: str) -> list[Problem]:
    """Structure problems beyond what parsing found (HL7v2: hl7apy's rules)."""
    if level == "off":
        return []
    return codec_for(parsed.standard).validate(parsed, level)


@dataclass
class Inspection:
    standard: str
    parsed: Parsed | None
    problems: list[Problem]


def inspect(raw: bytes, level: str = "strict") -> Inspection:
    standard = detect(raw)
    try:
        codec = codec_for(FALLBACK if standard == "unknown" else standard)
        parsed = codec.parse(raw)
    except ParseError as exc:
        return Inspection(standard, None, [Problem(exc.message, exc.code, exc.segment,
                                                   exc.field)])
    return Inspection(standard, parsed, validation_problems(parsed, level))


def acknowledgement(raw: bytes, level: str = "off") -> bytes:
    """The reply (or replies, a line apart) the engine would send for `raw`, as if it
    were stored, mapped and queued."""
    found = inspect(raw, level)
    codec = codec_for(found.standard if found.standard in registry.CODECS else FALLBACK)
    # (Standards recognised but not read yet are answered by the fallback's rejection
    # until their codecs come.)
    errors = [p for p in found.problems if p.severity in ("E", "F")]
    verdict = Verdict.REJECTED if errors or found.parsed is None else Verdict.ACCEPTED
    outcome = Outcome(verdict, tuple(found.problems))
    # The sender may ask for more than one answer (a commit and an application ACK).
    return b"\n".join(codec.replies(raw, found.parsed, outcome))


def file_acknowledgements(raw: bytes, level: str = "off") -> list[bytes]:
    """The answers the engine would send for a file: one for an envelope (an X12
    interchange, an HL7 FHS/BHS batch), built as the channel builds it
    (engine.pipeline.envelope: refused whole when the envelope itself is wrong, else each
    message answered and the answers gathered, one 999 per group), else one per message.
    HL7v2 messages merely following one another in a file are answered one by one, as a
    sender sends each in its own frame."""
    standard = detect(raw)
    codec = registry.CODECS[standard]() if standard in registry.CODECS else None
    envelope = None
    if codec is not None and (standard != "hl7v2" or opening(raw, 3) in (b"FHS", b"BHS")):
        try:
            envelope = codec.split(raw)
        except ParseError:
            envelope = None  # read as one message: its parser says what is wrong
    if codec is None or envelope is None:
        messages = codec.file_messages(raw) if codec is not None else [raw]
        return [acknowledgement(m, level) for m in messages]
    if envelope.problems:
        refused = Outcome(Verdict.REJECTED, tuple(envelope.problems))
        replies = [codec.reply(m, None, refused) for m in envelope.messages]
    else:
        replies = [acknowledgement(m, level) for m in envelope.messages]
    return [codec.envelope_reply(envelope, replies)]


def run_mapping(mapping: Mapping, raw: bytes) -> Mapped | Skip:
    """Parse `raw` with the mapping's input codec and run the mapping."""
    parsed = codec_for(mapping.accepts).parse(raw)
    return mapping.run(parsed.body)


def report(mapped: Mapped) -> list[str]:
    """What `conduit map --report` says beside an output: what could not be read, and
    every field that held a value no rule read."""
    lines = [f"warning {w}" for w in mapped.warnings]
    if mapped.left_behind:
        lines.append(f"left behind ({len(mapped.left_behind)}): "
                     + ", ".join(mapped.left_behind))
    elif mapped.tracked:
        lines.append("left behind: nothing")
    else:
        lines.append("left behind: not tracked by this mapping (the newest HL7v2 to "
                     "FHIR versions track it)")
    return lines


# -- fixtures ----------------------------------------------------------------------------

@dataclass
class FixtureResult:
    name: str  # e.g. "hl7v2-adt-to-fhir@1 epic_a01_admit"
    ok: bool
    details: list[str] = field(default_factory=list)


def _expected_files(folder: Path, case: str, output_ext: str) -> list[Path]:
    return [p for p in (folder / f"{case}{ext}" for ext in (output_ext, *OUTCOME_EXT))
            if p.exists()]


def output_ext(content_type: str) -> str:
    """The expected-output file extension: the codec's of the content type, else .json
    for other JSON, else .out."""
    codec = registry.codec_for_content(content_type)
    if codec is not None:
        return codec.extensions[0]
    return ".json" if "json" in content_type else ".out"


def mapping_fixtures(catalog: MappingCatalog, folder: Path, names: list[str] | None = None
                     ) -> Iterator[FixtureResult]:
    """Run every fixture of every mapping version under `folder` (or those named)."""
    for ref in catalog.refs():
        mapping = catalog.get(ref)
        assert mapping is not None
        if names and mapping.name not in names and ref not in names:
            continue
        cases = folder / mapping.name / "fixtures" / f"v{mapping.version}"
        in_ext = INPUT_EXT.get(mapping.accepts, ".in")
        for source in sorted(cases.glob(f"*{in_ext}")) if cases.is_dir() else []:
            yield run_case(f"{ref} {source.stem}", source,
                            lambda raw, m=mapping: mapping_outcome(m, raw),
                            output_ext(mapping.emits), mapping.emits)


def mapping_outcome(mapping: Mapping, raw: bytes) -> tuple[str, Any]:
    try:
        result = run_mapping(mapping, raw)
    except MappingError as exc:
        return "error", str(exc)
    except ParseError as exc:
        return "rejected", str(exc)
    if isinstance(result, Skip):
        return "skip", result.reason
    return "output", result


def _warnings_differ(source: Path, got: Any) -> list[str]:
    """Against `<case>.warnings` (one `place: reason` a line), when the fixture has one:
    a lenient mapping's warnings are part of what it promises."""
    want_file = source.with_suffix(".warnings")
    if not want_file.exists() or not isinstance(got, Mapped):
        return []
    want = [line.strip() for line in want_file.read_text().splitlines() if line.strip()]
    have = [str(w) for w in got.warnings]
    if want == have:
        return []
    return ["warnings differ:", *(f"  expected: {w}" for w in want),
            *(f"  got:      {w}" for w in have)]


def run_case(name: str, source: Path, run: Any, output_ext: str, content_type: str
              ) -> FixtureResult:
    expected = _expected_files(source.parent, source.stem, output_ext)
    if len(expected) != 1:
        found = ", ".join(p.name for p in expected) or "none"
        return FixtureResult(name, False, [f"needs exactly one expected file beside "
                                           f"{source.name} ({found} found)"])
    want = expected[0]
    kind, got = run(source.read_bytes())
    want_kind = {".skip": "skip", ".error": "error", ".filtered": "filtered",
                 ".rejected": "rejected"}.get(want.suffix, "output")
    if kind != want_kind:
        return FixtureResult(name, False, [f"expected {want_kind} ({want.name}), got {kind}"
                                           + (f": {got}" if kind != "output" else "")])
    if kind != "output":
        text = want.read_text().strip()
        ok = not text or text == str(got).strip() or (kind == "filtered" and text in str(got))
        return FixtureResult(name, ok, [] if ok else [f"expected: {text}", f"got:      {got}"])
    output = got.output if isinstance(got, Mapped) else got
    try:
        changes = diff_outputs(want.read_bytes(), output, content_type)
    except (ValueError, msgspec.DecodeError, ParseError) as exc:
        return FixtureResult(name, False, [f"cannot compare with {want.name}: {exc}"])
    details = [c.describe() for c in changes] + _warnings_differ(source, got)
    return FixtureResult(name, not details, details)


def channel_fixtures(channels: list[Any], catalog: MappingCatalog, folder: Path,
                     names: list[str] | None = None) -> Iterator[FixtureResult]:
    """Run `channels/fixtures/<channel>/<case>.<ext>` through each channel's filter and
    mapping, as the daemon would, without sockets or store."""
    for loaded in channels:
        cfg = loaded.config
        if names and cfg.name not in names:
            continue
        cases = folder / "fixtures" / cfg.name
        if not cases.is_dir():
            continue
        codec = codec_for(cfg.format)
        mapping = catalog.get(cfg.mapping) if cfg.mapping else None
        emits = mapping.emits if mapping else codec.content_type
        rules = Filter(cfg.filter)
        in_ext = INPUT_EXT.get(cfg.format, ".in")

        def outcome(raw: bytes, codec: Codec = codec, mapping: Mapping | None = mapping,
                    rules: Filter = rules) -> tuple[str, Any]:
            try:
                parsed = codec.parse(raw)
            except ParseError as exc:
                return "rejected", str(exc)
            failed = rules.first_failed(lambda path: codec.field(parsed, path))
            if failed is not None:
                return "filtered", failed
            if mapping is None:
                return "output", raw
            try:
                result = mapping.run(parsed.body)
            except MappingError as exc:
                return "error", str(exc)
            return ("filtered", f"skipped: {result.reason}") if isinstance(result, Skip) \
                else ("output", result)

        for source in sorted(cases.glob(f"*{in_ext}")):
            yield run_case(f"channel {cfg.name} {source.stem}", source, outcome,
                            output_ext(emits), emits)


def pretty(output: bytes, content_type: str) -> str:
    """Output as a person reads it: indented JSON, one HL7 segment per line."""
    if "json" in content_type:
        return json.dumps(msgspec.json.decode(output), indent=2, ensure_ascii=False)
    text = output.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def diff_versions(a: Mapping, b: Mapping, raw: bytes) -> list[Change] | str:
    """How two mapping versions' outputs differ for one message (or why they can't be
    compared: one skipped or failed)."""
    outcomes = [mapping_outcome(m, raw) for m in (a, b)]
    if any(kind != "output" for kind, _ in outcomes):
        (ka, va), (kb, vb) = outcomes
        if (ka, va) == (kb, vb):
            return []
        return (f"{a.ref}: {ka}{'' if ka == 'output' else ': ' + str(va)}; "
                f"{b.ref}: {kb}{'' if kb == 'output' else ': ' + str(vb)}")
    (_, first), (_, second) = outcomes
    return diff_outputs(first.output, second.output, b.emits)
