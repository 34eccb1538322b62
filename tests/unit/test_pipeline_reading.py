"""engine/pipeline/reading.py: parse and validate through the channel's codec, every
failure a Problem in the standard's words (a codec bug too), and the audit details of
what was read."""

from __future__ import annotations

import logging
from typing import Any

from engine.formats.hl7v2 import Hl7v2Codec
from engine.message import Parsed, Problem, ProblemKind, SourceMeta
from engine.ops import tracing
from engine.pipeline.reading import Reader, parsed_detail, problem_detail, received_detail

ADT = (b"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT^A01|C1|P|2.5\r"
       b"PID|1||X-MRN^^^NORTH^MR||DOE^JANE\r")
META = SourceMeta("mllp", "p", len(ADT))
TRACE = tracing.OFF


def test_a_message_is_parsed_and_a_control_id_given_replaces_the_codecs():
    reader = Reader("adt", Hl7v2Codec(), "off")
    parsed, problem = reader.read(ADT, META, TRACE)
    assert problem is None and parsed.control_id == "C1"
    parsed, _ = reader.read(ADT, META, TRACE, control_id="sha256:abc")
    assert parsed.control_id == "sha256:abc"


def test_truncated_unparsable_and_a_raising_codec_are_problems(caplog):
    reader = Reader("adt", Hl7v2Codec(), "off")
    parsed, problem = reader.read(ADT[:10], SourceMeta("mllp", size=9000, truncated=True),
                                  TRACE)
    assert parsed is None and problem.text.startswith("message of 9000 bytes is over")
    parsed, problem = reader.read(b"garbage", META, TRACE)
    assert parsed is None and problem is not None

    class Broken(Hl7v2Codec):
        def parse(self, raw: bytes) -> Any:
            raise KeyError("bug")

    with caplog.at_level(logging.ERROR):
        parsed, problem = Reader("adt", Broken(), "off").read(ADT, META, TRACE)
    assert parsed is None and problem.text == "unreadable message (KeyError)"


def test_a_reprocess_refuses_what_the_channel_splits():
    reader = Reader("adt", Hl7v2Codec(), "off", splits=lambda raw: True)
    assert reader.read(ADT, META, TRACE)[0] is not None  # taken on: split before reading
    parsed, problem = reader.read(ADT, META, TRACE, whole=False)
    assert parsed is None
    assert problem == Hl7v2Codec().problem(
        ProblemKind.NOT_REPROCESSABLE, "a Bundle this channel splits cannot be reprocessed "
        "as one message; have the sender send it again")


class Judging(Hl7v2Codec):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__()
        self.found = problems

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        return self.found


def test_validation_refuses_on_errors_and_warns_otherwise():
    warning, error = Problem("w", severity="W"), Problem("e", severity="E")
    parsed = Parsed("hl7v2")
    assert Reader("a", Judging([warning, error]), "off").validate(parsed) == ((), ())
    assert Reader("a", Judging([warning]), "lenient").validate(parsed) == ((), (warning,))
    assert Reader("a", Judging([warning, error]), "strict").validate(parsed) == (
        (error, warning), ())


def test_audit_details():
    meta = SourceMeta("http", size=5, tls_subject="CN=x", changes=("meta.lastUpdated",))
    assert received_detail(meta, {"split_from": 1}) == {
        "transport": "http", "size": 5, "split_from": 1, "client": "CN=x",
        "set": ["meta.lastUpdated"]}
    assert received_detail(SourceMeta("mllp", size=3), None) == {"transport": "mllp",
                                                                 "size": 3}
    parsed = Parsed("hl7v2", "ADT^A01", "C1", "2.5")
    assert parsed_detail(parsed, ()) == {"standard": "hl7v2", "type": "ADT^A01",
                                         "control_id": "C1", "version": "2.5"}
    assert parsed_detail(parsed, (Problem("w"),))["warnings"] == 1
    assert problem_detail(Problem("bad", "102", "PID", 3)) == {
        "code": "102", "reason": "bad", "segment": "PID", "field": 3}
