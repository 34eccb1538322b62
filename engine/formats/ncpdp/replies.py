"""SCRIPT answers: Status (the message is taken on), Error (it is not, with the NCPDP
transport code and what was wrong) built for a sender, and a receiver's Status, Error
or Verify read back for the queue.

Error codes used (SCRIPT transport): 900 transaction rejected (the message is wrong:
resending it unchanged will not help), 601 receiver unable to process, 602 receiver
system error (resend later). Status 000: transaction successful (taken on by this
intermediary; 010 would say the ultimate receiver accepted it). Each answer has its own
MessageID, RelatesToMessageID the message's own, To and From swapped, and the
message's namespace and version attributes, so its sender correlates it.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from engine.errors import ParseError
from engine.formats.ncpdp.message import ScriptMessage
from engine.formats.ncpdp.xml import parse_xml
from engine.message import Delivery, Fail, Problem, Retry, Sent

RESPONSES = frozenset({"Status", "Error", "Verify"})  # transport answers: not answered
SCRIPT_NAMESPACE = "http://www.ncpdp.org/schema/SCRIPT"
VERSION_ATTRIBUTES = {"DatatypesVersion": "2017071", "TransportVersion": "2017071",
                      "TransactionDomain": "SCRIPT", "TransactionVersion": "2017071",
                      "StructuresVersion": "2017071", "ECLVersion": "2017071"}
# What a message may say its version with, copied to its answer: 2017071's attributes
# above, and SCRIPT 10.6's version="010" release="006" (answered in its own version).
ANSWERED_VERSION = (*VERSION_ATTRIBUTES, "version", "release")
MAX_DESCRIPTION = 250
# A MessageID salvaged from an unreadable message: printable ASCII only (a control
# character copied into the answer would make the answer itself unreadable XML).
_MESSAGE_ID = re.compile(rb"<(?:[\w.-]+:)?MessageID>\s*([\x21-\x3b\x3d-\x7e]{1,64})\s*<")
# Its From and To (with their Qualifier), so the Error goes back to the sender by name.
_PARTY = {name: re.compile(rb"<(?:[\w.-]+:)?" + name.encode()
                           + rb"""(?:\s+Qualifier\s*=\s*["'](\w{1,10})["'])?\s*>"""
                           rb"\s*([\x21-\x3b\x3d-\x7e]{1,80})\s*<")
          for name in ("To", "From")}
# The Body's first element, read from the bytes of a message too broken to parse: a
# Status, Error or Verify that is not well-formed is still an answer, and not answered.
_FIRST_IN_BODY = re.compile(rb"<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([\w.-]+)")
_RETRY_ERRORS = frozenset({"600", "602"})
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # no XML 1.0 has them


def build_status(message: ScriptMessage | None, raw: bytes) -> bytes:
    return _answer(message, raw, "<Status><Code>000</Code></Status>")


def build_error(message: ScriptMessage | None, raw: bytes,
                problems: Sequence[Problem]) -> bytes:
    code = problems[0].code if problems[0].code in ("600", "601", "602", "900") else "900"
    description = _NOT_XML.sub("?", "; ".join(p.text for p in problems))
    if len(description) > MAX_DESCRIPTION:
        description = description[:MAX_DESCRIPTION - 3] + "..."
    return _answer(message, raw, f"<Error><Code>{code}</Code>"
                                 f"<Description>{escape(description)}</Description></Error>")


def _answer(message: ScriptMessage | None, raw: bytes, body: str) -> bytes:
    if message is not None:
        namespace = message.namespace or SCRIPT_NAMESPACE
        attributes = {k: v for k, v in message.root.attrib.items()
                      if k in ANSWERED_VERSION} or VERSION_ATTRIBUTES
        to, to_q = message.value("Header/From"), message.value("Header/From@Qualifier")
        sender, sender_q = message.value("Header/To"), message.value("Header/To@Qualifier")
        relates = message.value("Header/MessageID")
    else:  # unreadable: answer what can be salvaged, correlated when its id is found
        namespace, attributes = SCRIPT_NAMESPACE, VERSION_ATTRIBUTES
        to, to_q = _salvaged(raw, "From")
        sender, sender_q = _salvaged(raw, "To")
        found = _MESSAGE_ID.search(raw[:65536])
        relates = found.group(1).decode("ascii", "replace") if found else ""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in attributes.items())
    header = (f"<To{_qualifier(to_q)}>{escape(to)}</To>"
              f"<From{_qualifier(sender_q)}>{escape(sender)}</From>"
              f"<MessageID>{uuid.uuid4().hex}</MessageID>"
              + (f"<RelatesToMessageID>{escape(relates)}</RelatesToMessageID>"
                 if relates else "")
              + f"<SentTime>{now[:-4]}Z</SentTime>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Message xmlns={quoteattr(namespace)}'
            f"{attrs}><Header>{header}</Header><Body>{body}</Body></Message>"
            ).encode()


def is_answer(raw: bytes) -> bool:
    """Whether the bytes of a message that could not be parsed are a Status, Error or
    Verify (RESPONSES), by its Body's first element."""
    found = _FIRST_IN_BODY.search(raw[:1 << 16])  # the first Body: a second root's is not
    return found is not None and found[1].decode("ascii", "replace") in RESPONSES


def _salvaged(raw: bytes, name: str) -> tuple[str, str]:
    """(value, qualifier) of Header/To or From found in an unreadable message's bytes."""
    found = _PARTY[name].search(raw[:65536])
    if found is None:
        return "", ""
    return (found.group(2).decode("ascii"),
            (found.group(1) or b"").decode("ascii"))


def _qualifier(value: str) -> str:
    return f" Qualifier={quoteattr(value)}" if value else ""


def read_answer(reply: bytes) -> Delivery:
    """A receiver's answer: Status and Verify delivered; Error 900 (and 601) refused for
    good, 600/602 retried; anything unreadable retried. Reasons carry codes only: an
    Error's Description may quote the patient."""
    try:
        root, namespace = parse_xml(reply)
    except ParseError:
        return Retry("the receiver's answer is not SCRIPT XML")
    message = ScriptMessage(root, namespace)
    kind = message.message_type
    code = message.value(f"Body/{kind}/Code") if kind else ""
    if kind == "Status":
        return Sent(code or "Status")
    if kind == "Verify":
        return Sent(message.value("Body/Verify/VerifyStatus/Code") or "Verify")
    if kind == "Error":
        described = message.value("Body/Error/DescriptionCode")
        detail = f" (DescriptionCode {described[:10]})" if described else ""
        if code in _RETRY_ERRORS:
            return Retry(f"receiver answered Error {code}{detail}", code=code)
        return Fail(f"receiver answered Error {code or 'without a code'}{detail}",
                    code=code or "Error")
    return Retry(f"the receiver answered {kind or 'nothing'}, not Status, Error or Verify")
