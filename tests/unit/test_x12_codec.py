"""The X12 5010 codec: delimiters from the ISA in several vendors' styles, envelope
checks and the TA1/999 each failure gets, routing fields, field paths, the 999 for good
and bad interchanges (checked by reading it back), and partners' 999/TA1."""

from __future__ import annotations

import re

import pytest

from engine.errors import ParseError
from engine.formats.x12 import X12Codec
from engine.formats.x12.interchange import read_interchanges
from engine.formats.x12.tokens import Delimiters, read_delimiters, tokenize
from engine.message import Fail, Outbound, Outcome, ProblemKind, Retry, Sent, Verdict

codec = X12Codec()

ELIGIBILITY_270 = [
    "BHT*0022*13*REF1*20240101*1200", "HL*1**20*1", "NM1*PR*2*ACME HEALTH*****PI*12345",
    "HL*2*1*21*1", "NM1*1P*2*NORTHWING CLINIC*****XX*1234567893", "HL*3*2*22*0",
    "TRN*1*TRACE1*9877281234", "NM1*IL*1*DOE*JANE****MI*MEM270", "DMG*D8*19800101",
    "DTP*291*D8*20240101", "EQ*30"]
CLAIM_837P = [
    "BHT*0019*00*CLM1*20240101*1200*CH", "NM1*41*2*NORTHWING CLINIC*****46*TAX1",
    "NM1*40*2*ACME HEALTH*****46*12345", "HL*1**20*1",
    "NM1*85*2*NORTHWING CLINIC*****XX*1234567893", "HL*2*1*22*0", "SBR*P*18*GRP1******CI",
    "NM1*IL*1*DOE*JANE****MI*MEM837", "NM1*PR*2*ACME HEALTH*****PI*12345",
    "CLM*PAT1*100***11:B:1*Y*A*Y*Y", "HI*ABK:J069^ABF:R05", "LX*1",
    "SV1*HC:99213*100*UN*1***1", "DTP*472*D8*20240101"]
REMITTANCE_835 = [
    "BPR*I*90*C*ACH*CCP*01*999999999*DA*123456*1234567890**01*999999999*DA*654321*20240105",
    "TRN*1*EFT1*1234567890", "N1*PR*ACME HEALTH", "N1*PE*NORTHWING CLINIC*XX*1234567893",
    "LX*1", "CLP*PAT1*1*100*90**12*CLAIM1*11*1", "NM1*QC*1*DOE*JANE****MI*MEM835",
    "SVC*HC:99213*100*90**1", "CAS*CO*45*10"]

GS = {"270": ("HS", "005010X279A1"), "837": ("HC", "005010X222A1"),
      "835": ("HP", "005010X221A1")}


def isa(control: str = "000000101", ack: str = "0", sender: str = "SUBMITTER",
        receiver: str = "PAYER") -> str:
    return (f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{receiver:<15}*240101*1200*^*"
            f"00501*{control}*{ack}*P*:")


def interchange(*groups: list[tuple[str, list[str]]], control: str = "000000101",
                ack: str = "0", version: str | None = None) -> str:
    """An interchange in the * ^ : ~ style, counts and control numbers right: each group
    a list of (ST01, body segments)."""
    out = [isa(control, ack)]
    for g, sets in enumerate(groups, start=1):
        code, convention = GS[sets[0][0]]
        out.append(f"GS*{code}*SUBMITTER*PAYER*20240101*1200*{g}*X*{version or convention}")
        for s, (kind, body) in enumerate(sets, start=1):
            st = [f"ST*{kind}*{s:04d}*{version or convention}", *body]
            out += [*st, f"SE*{len(st) + 1}*{s:04d}"]
        out.append(f"GE*{len(sets)}*{g}")
    out.append(f"IEA*{len(groups)}*{control}")
    return "~".join(out) + "~"


def style(text: str, element: str, repetition: str, component: str, terminator: str,
          newline: str = "") -> bytes:
    """The same interchange in another vendor's delimiters (and line breaks)."""
    table = str.maketrans({"*": element, "^": repetition, ":": component,
                           "~": terminator + newline})
    return text.translate(table).encode()


def one(kind: str = "270", body: list[str] | None = None, **kw) -> str:
    return interchange([(kind, body or ELIGIBILITY_270)], **kw)


STYLES = {
    "star-tilde": ("*", "^", ":", "~", ""),
    "star-tilde-crlf": ("*", "^", ":", "~", "\r\n"),
    "pipe-caret-newline": ("|", "}", "^", "\n", ""),
    "bang-backslash-lf": ("!", "{", "\\", "'", "\n"),
}


# -- tokenizer -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(STYLES))
def test_delimiters_come_from_the_isa_in_every_style(name):
    element, repetition, component, terminator, _ = STYLES[name]
    raw = style(one(), *STYLES[name])
    delimiters, elements = read_delimiters(raw.decode())
    assert delimiters == Delimiters(element, repetition, component, terminator)
    assert len(elements) == 17 and elements[13] == "000000101"
    parsed = codec.parse(raw)
    assert (parsed.message_type, parsed.patient_id) == ("270", "MEM270")
    assert codec.field(parsed, "NM1[1P].09") == "1234567893"
    assert codec.detect(raw) and codec.split(raw) is None


def test_components_repetitions_and_line_breaks():
    raw = style(one("837", CLAIM_837P), "*", "^", ":", "~", "\r\n")
    body = codec.parse(b"\xef\xbb\xbf\r\n" + raw).body
    hi = body.find("HI")
    assert hi.element(1, 2) == "J069" and hi.element(1, 2, repetition=2) == "R05"
    assert codec.field(codec.parse(raw), "CLM05-1") == "11"
    assert all("\n" not in s.text() for s in tokenize(raw.decode()))


def test_isa_is_read_by_its_separators_not_offsets():
    with pytest.raises(ParseError) as cut:
        read_delimiters("ISA*00*          *00*")
    assert cut.value.code == "023"
    with pytest.raises(ParseError):
        read_delimiters("GS*HS*A*B")


# -- routing fields ----------------------------------------------------------------------

@pytest.mark.parametrize(("version", "expected"), [
    ("005010X222A1", "837P"), ("005010X223A2", "837I"), ("005010X224A2", "837D")])
def test_837_is_told_apart_by_its_implementation_convention(version, expected):
    parsed = codec.parse(one("837", CLAIM_837P, version=version).encode())
    assert parsed.message_type == expected
    assert parsed.patient_id == "MEM837" and parsed.version == "005010"


def test_routing_fields():
    parsed = codec.parse(one().encode())
    assert parsed.standard == "x12"
    assert parsed.control_id == "000000101-1-0001"  # ISA13-GS06-ST02
    assert parsed.sender == "SUBMITTER^SUBMITTER" and parsed.receiver == "PAYER^PAYER"
    remit = codec.parse(one("835", REMITTANCE_835).encode())
    assert (remit.message_type, remit.patient_id) == ("835", "MEM835")
    no_member = [s for s in ELIGIBILITY_270 if not s.startswith("NM1*IL")]
    assert codec.parse(one("270", no_member).encode()).patient_id is None


def test_hl_hierarchy():
    body = codec.parse(one().encode()).body
    assert [(h.id, h.parent, h.level) for h in body.loops] == [
        ("1", "", "20"), ("2", "1", "21"), ("3", "2", "22")]
    assert body.tops[0].children[0].children[0] is body.hl("22")[0]
    assert body.hl("22")[0].find("NM1", "IL").element(9) == "MEM270"
    assert body.hl("21")[0].find("NM1", "IL") is None


# -- field paths -------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "value"), [
    ("ST01", "270"), ("BHT03", "REF1"), ("NM1[IL].09", "MEM270"), ("NM1[IL]09", "MEM270"),
    ("NM1[2]03", "NORTHWING CLINIC"), ("HL[22]/NM1[IL]09", "MEM270"),
    ("HL[21]/NM1[IL]09", ""), ("ISA06", "SUBMITTER"), ("GS08", "005010X279A1"),
    ("NM1[XX]09", ""), ("ZZZ01", "")])
def test_field_paths(path, value):
    parsed = codec.parse(one().encode())
    assert codec.field_path_error(path) is None
    assert codec.field(parsed, path) == value


@pytest.mark.parametrize("path", ["PID-3", "NM1", "nm1[IL]09", "NM1[IL].9", "ST01.x", ""])
def test_field_path_errors(path):
    assert "X12 field path" in codec.field_path_error(path)


# -- envelopes ---------------------------------------------------------------------------

def several() -> str:
    first = interchange([("270", ELIGIBILITY_270), ("270", ELIGIBILITY_270)],
                        [("837", CLAIM_837P)])
    second = interchange([("835", REMITTANCE_835)], control="000000102")
    return first + "\r\n" + second


def segments(reply: bytes) -> list[list[str]]:
    return [s.elements for s in tokenize(reply.decode())]


def answer(raw: bytes) -> bytes:
    """What the channel does with an envelope: each message answered as it parses."""
    envelope = codec.split(raw)
    assert envelope is not None
    replies = []
    for message in envelope.messages:
        try:
            parsed = codec.parse(message)
            outcome = Outcome(Verdict.REJECTED, tuple(envelope.problems)) \
                if envelope.problems else Outcome(Verdict.ACCEPTED)
        except ParseError as exc:
            parsed, outcome = None, Outcome(Verdict.REJECTED, (codec.problem(
                ProblemKind.UNREADABLE, exc.message),))
        replies.append(codec.reply(message, parsed, outcome))
    return codec.envelope_reply(envelope, replies)


def test_several_interchanges_groups_and_sets():
    raw = style(several(), *STYLES["pipe-caret-newline"])
    envelope = codec.split(raw)
    assert envelope is not None and not envelope.problems
    kinds = [codec.parse(m).message_type for m in envelope.messages]
    assert kinds == ["270", "270", "837P", "835"]
    assert codec.file_messages(raw) == list(envelope.messages)
    ids = [codec.parse(m).control_id for m in envelope.messages]
    assert ids == ["000000101-1-0001", "000000101-1-0002", "000000101-2-0001",
                   "000000102-1-0001"]


def test_a_good_interchange_gets_a_999_whose_own_counts_are_right():
    reply = answer(several().encode())
    interchanges, notes = read_interchanges(reply.decode())
    assert notes == [] and len(interchanges) == 2  # our own 999s pass our own checks
    segs = segments(reply)
    ak9 = [s for s in segs if s[0] == "AK9"]
    assert ak9 == [["AK9", "A", "2", "2", "2"], ["AK9", "A", "1", "1", "1"],
                   ["AK9", "A", "1", "1", "1"]]
    assert [s[1:3] for s in segs if s[0] == "AK1"] == [["HS", "1"], ["HC", "2"], ["HP", "1"]]
    assert [s[1:3] for s in segs if s[0] == "AK2"] == [
        ["270", "0001"], ["270", "0002"], ["837", "0001"], ["835", "0001"]]
    assert [s[1] for s in segs if s[0] == "IK5"] == ["A"] * 4
    assert not any(s[0] == "TA1" for s in segs)  # ISA14 = 0: no TA1 asked
    gs = [s for s in segs if s[0] == "GS"]
    assert gs[0][1] == "FA" and gs[0][8] == "005010X231A1"
    assert gs[0][2] == "PAYER" and gs[0][3] == "SUBMITTER"  # sender and receiver swapped


def _ta1(reply: bytes) -> list[str]:
    found = [s for s in segments(reply) if s[0] == "TA1"]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("breakage", "note"), [
    (lambda t: t.replace("IEA*1*000000101", "IEA*1*000000999"), "001"),
    (lambda t: t.replace("IEA*1*000000101", "IEA*2*000000101"), "021"),
    (lambda t: t.replace("*ZZ*SUBMITTER      *", "*ZZ*SUBMITTER*"), "006"),
    (lambda t: t.replace("*240101*1200*^*", "*20240101*1200*^*"), "014"),
    (lambda t: t[:t.index("IEA")], "023"),
])
def test_interchange_errors_get_a_ta1_rejection(breakage, note):
    raw = breakage(one()).encode()
    envelope = codec.split(raw)
    assert envelope is not None and envelope.problems[0].code == note
    with pytest.raises(ParseError) as refused:
        codec.parse(raw)
    assert refused.value.code == note
    ta1 = _ta1(answer(raw))
    assert ta1[1] == "000000101" and ta1[4:6] == ["R", note]
    assert _ta1(codec.reply(raw, None, Outcome(Verdict.REJECTED)))[4:6] == ["R", note]
    assert not any(s[0] == "ST" for s in segments(answer(raw)))


@pytest.mark.parametrize(("breakage", "code"), [
    (lambda t: t.replace("GE*1*1~", "GE*1*7~"), "4"),
    (lambda t: t.replace("GE*1*1~", "GE*3*1~"), "5"),
    (lambda t: t.replace("GE*1*1~", ""), "3"),
])
def test_group_errors_get_a_999_rejecting_the_group(breakage, code):
    raw = breakage(one()).encode()
    envelope = codec.split(raw)
    assert envelope is not None and envelope.problems[0].code == code
    segs = segments(answer(raw))
    ak9 = next(s for s in segs if s[0] == "AK9")
    assert ak9[1] == "R" and ak9[4] == "0" and code in ak9[5:]
    assert next(s for s in segs if s[0] == "IK5")[1] == "R"


@pytest.mark.parametrize(("breakage", "code"), [
    (lambda t: t.replace("SE*13*0002", "SE*12*0002"), "4"),
    (lambda t: t.replace("SE*13*0002", "SE*13*0009"), "3"),
])
def test_a_bad_set_is_rejected_alone_and_its_group_partly_accepted(breakage, code):
    good = interchange([("270", ELIGIBILITY_270), ("270", ELIGIBILITY_270)])
    assert "SE*13*0002" in good
    raw = breakage(good).encode()
    envelope = codec.split(raw)
    assert envelope is not None and not envelope.problems
    with pytest.raises(ParseError) as bad:
        codec.parse(envelope.messages[1])
    assert bad.value.code == code
    segs = segments(answer(raw))
    assert [s[1:] for s in segs if s[0] == "IK5"] == [["A"], ["R", code]]
    assert next(s for s in segs if s[0] == "AK9") == ["AK9", "P", "2", "2", "1"]
    se = [s for s in segs if s[0] == "SE"]
    st_index = next(i for i, s in enumerate(segs) if s[0] == "ST")
    assert se[0][1] == str(len(segs) - st_index - 2)  # ST..SE, without GE and IEA


def test_ta1_when_asked_and_acknowledgements_never_answered():
    raw = one(ack="1").encode()
    reply = codec.reply(raw, codec.parse(raw), Outcome(Verdict.ACCEPTED))
    assert _ta1(reply)[4:6] == ["A", "000"]
    assert len(codec.replies(raw, codec.parse(raw), Outcome(Verdict.ACCEPTED))) == 1
    assert codec.reply(reply, None, Outcome(Verdict.ACCEPTED)) == b""
    assert codec.reply(b"not x12", None, Outcome(Verdict.REJECTED)) == b""


def test_outcomes_give_ik5_codes():
    raw = one().encode()
    parsed = codec.parse(raw)

    def ik5(outcome):
        return next(s for s in segments(codec.reply(raw, parsed, outcome)) if s[0] == "IK5")

    assert ik5(Outcome(Verdict.ACCEPTED)) == ["IK5", "A"]
    failed = codec.problem(ProblemKind.MAPPING_FAILED, "no mapping")
    # stored for the analyst, but not processed: the sender must send it again corrected
    assert ik5(Outcome(Verdict.ERROR, (failed,))) == ["IK5", "R", "5"]
    cut = codec.problem(ProblemKind.TRUNCATED, "too big")
    assert ik5(Outcome(Verdict.REJECTED, (cut,))) == ["IK5", "R", "2"]


# -- partners' answers -------------------------------------------------------------------

def partner_999(ik5: str, ak9: str, st02: str = "0001") -> bytes:
    return ("ISA*00*          *00*          *ZZ*PAYER          *ZZ*SUBMITTER      *240101*"
            "1201*^*00501*000000900*0*P*:~GS*FA*PAYER*SUBMITTER*20240101*1201*9*X*"
            f"005010X231A1~ST*999*0001*005010X231A1~AK1*HC*1*005010X222A1~AK2*837*{st02}~"
            f"IK5*{ik5}~AK9*{ak9}~SE*6*0001~GE*1*9~IEA*1*000000900~").encode()


SENT = Outbound(1, "m1", "c", "d", b"", "application/edi-x12",
                control_id="000000101-1-0001")


@pytest.mark.parametrize(("reply", "kind"), [
    (partner_999("A", "A*1*1*1"), Sent),
    (partner_999("E*5", "E*1*1*1"), Sent),
    (partner_999("R*5", "R*1*1*0"), Fail),
    (partner_999("A", "P*2*2*1"), Sent),  # partly accepted, ours among the accepted
    (partner_999("R*4", "P*2*2*1"), Fail),
    (partner_999("A", "A*1*1*1", st02="0002"), Retry),  # not about our set
    (b"\x00garbage", Retry),
])
def test_read_reply(reply, kind):
    assert isinstance(codec.read_reply(reply, SENT), kind)


def test_read_a_ta1():
    refused = re.sub(rb"GS\*.*", b"", partner_999("A", "A*1*1*1")).replace(
        b"*0*P*:~", b"*0*P*:~TA1*000000101*240101*1200*R*001~IEA*0*000000900~")
    assert isinstance(codec.read_reply(refused, SENT), Fail)
    accepted = refused.replace(b"*R*001", b"*A*000")
    assert isinstance(codec.read_reply(accepted, SENT), Sent)


def test_diff_by_x12_paths():
    a = one().encode()
    b = a.replace(b"MEM270", b"MEM271").replace(b"~", b"~\n")
    changes = codec.diff(a, b)
    assert [(c.path, c.old, c.new) for c in changes] == [("NM1[3].09", "MEM270", "MEM271")]
