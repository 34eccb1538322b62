"""Writing SCRIPT XML: what mappings (FHIR to NewRx, HL7v2 RDE to NewRx) and answers use
to produce a Message, so no mapping concatenates XML itself.

The Body is given as nested Python data, in document order:
- a dict maps element names to values; a key starting with "@" is an attribute;
- a value is a string (the element's text), a dict (its children), a list (the element
  repeated, one per item), an `xml.etree.ElementTree.Element` (copied as it is: a
  DigitalSignature read from a message goes out with the same elements and text), or
  None / "" / {} / [] (left out, so optional elements need no `if`).

Text is escaped by the serializer (`&`, `<`, `>`, quotes); a character XML 1.0 cannot
carry (a control character) is refused with ValueError naming the element, never the
value. Output is deterministic when MessageID and SentTime are given: the same data
gives the same bytes.
"""

from __future__ import annotations

import copy
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["NAMESPACE", "VERSION", "header_order", "message", "sent_time", "version_attributes"]

NAMESPACE = "http://www.ncpdp.org/schema/SCRIPT"
VERSION = "2017071"
_VERSION_NAMES = ("DatatypesVersion", "TransportVersion", "TransactionDomain",
                  "TransactionVersion", "StructuresVersion", "ECLVersion")
# Header children that come before PrescriberOrderNumber; anything else given in
# `header` (DigitalSignature ...) follows it.
_BEFORE_ORDER = ("Security", "SenderSoftware", "Mailbox", "TestMessage",
                 "RxReferenceNumber", "TertiaryIdentification")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

Node = Any  # str | Mapping[str, Node] | list[Node] | ET.Element | None


def version_attributes(version: str = VERSION) -> dict[str, str]:
    """The Message attributes a SCRIPT version declares (all of them the same version)."""
    return {name: ("SCRIPT" if name == "TransactionDomain" else version)
            for name in _VERSION_NAMES}


def sent_time(moment: datetime | None = None) -> str:
    """A SentTime in UTC with milliseconds (`2026-12-01T14:05:22.100Z`)."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def header_order(names: list[str]) -> list[str]:
    """Extra Header children ordered around PrescriberOrderNumber."""
    return ([n for n in names if n in _BEFORE_ORDER]
            + [n for n in names if n not in _BEFORE_ORDER])


def message(
    body: Mapping[str, Node],
    *,
    to: tuple[str, str],
    sender: tuple[str, str],
    message_id: str | None = None,
    sent: str | None = None,
    relates_to: str | None = None,
    prescriber_order_number: str | None = None,
    header: Mapping[str, Node] | None = None,
    version: str = VERSION,
    attributes: Mapping[str, str] | None = None,
    namespace: str = NAMESPACE,
    indent: str | None = "  ",
) -> bytes:
    """A SCRIPT Message as UTF-8 bytes with an XML declaration.

    `to` and `sender` are (value, qualifier) for Header/To and Header/From (qualifiers:
    P pharmacy, C clinic/prescriber system, D, M mailbox, ZZ ...). `body` holds the one
    message element, e.g. {"NewRx": {...}}. `attributes` replaces the version
    attributes (else those of `version`); `namespace` "" writes no namespace. MessageID
    defaults to a random uuid and SentTime to now: give both for deterministic output.
    """
    if len(body) != 1:
        raise ValueError("a SCRIPT Body holds exactly one message element")
    # Tags stay local and the namespace is the root's default (xmlns): the whole
    # document is in it, with no prefix, the way most SCRIPT systems write it.
    root = ET.Element("Message", {"xmlns": namespace} if namespace else {})
    root.attrib.update(attributes if attributes is not None else version_attributes(version))
    head = ET.SubElement(root, "Header")
    extra = dict(header or {})
    fields: dict[str, Node] = {
        "To": {"@Qualifier": to[1], "#text": to[0]},
        "From": {"@Qualifier": sender[1], "#text": sender[0]},
        "MessageID": message_id or uuid.uuid4().hex,
        "RelatesToMessageID": relates_to,
        "SentTime": sent or sent_time(),
    }
    ordered = header_order(list(extra))
    for name in ordered:
        if name in _BEFORE_ORDER:
            fields[name] = extra[name]
    fields["PrescriberOrderNumber"] = prescriber_order_number
    for name in ordered:
        if name not in _BEFORE_ORDER:
            fields[name] = extra[name]
    _children(head, fields, "Header")
    _children(ET.SubElement(root, "Body"), body, "Body")
    if indent:
        ET.indent(root, space=indent)
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n")


def _checked(text: str, where: str) -> str:
    if _NOT_XML.search(text):
        raise ValueError(f"{where} holds a character XML cannot carry")
    return text


def _children(parent: ET.Element, data: Mapping[str, Node], where: str) -> None:
    for name, value in data.items():
        if name == "#text":
            parent.text = _checked(str(value), where) if value not in (None, "") else None
        elif name.startswith("@"):
            if value not in (None, ""):
                parent.set(name[1:], _checked(str(value), f"{where}@{name[1:]}"))
        elif isinstance(value, list):
            for item in value:
                _element(parent, name, item, f"{where}/{name}")
        else:
            _element(parent, name, value, f"{where}/{name}")


def _element(parent: ET.Element, name: str, value: Node, where: str) -> None:
    if value is None or value == "" or (isinstance(value, (Mapping, list)) and not value):
        return
    if isinstance(value, ET.Element):
        parent.append(_local(copy.deepcopy(value)))
        return
    element = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        _children(element, value, where)
        if len(element) == 0 and not element.text and not element.attrib:
            parent.remove(element)
    else:
        element.text = _checked(str(value), where)


def _local(element: ET.Element) -> ET.Element:
    """A copied element with local tags (as the codec reads them), in the root's
    default namespace; its tail is dropped (indentation is ours)."""
    for node in element.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.rsplit("}", 1)[1]
    element.tail = None
    return element
