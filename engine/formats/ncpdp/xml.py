"""Safe reading of SCRIPT XML: defusedxml refuses DTDs, entity declarations and external
references (billion laughs, XXE) before anything is expanded; depth and element counts
are bounded after the parse, without recursion. Element names are read by their local
names (the SCRIPT namespace, a prefix or none at all are the same message)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from engine.errors import ParseError

MAX_DEPTH = 64  # a NewRx nests about 10 deep; nothing in SCRIPT needs more
MAX_ELEMENTS = 50_000


def local(tag: str) -> str:
    """`{namespace}Name` or `prefix:Name` as `Name`."""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def parse_xml(raw: bytes) -> tuple[ET.Element, str]:
    """The root element with every tag made local, and the root's namespace ("" when
    none); ParseError for what is not safe, well-formed, bounded XML."""
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True,
                          forbid_external=True)
    except DefusedXmlException as exc:
        raise ParseError(f"refused XML: {type(exc).__name__} (DTDs, entities and external "
                         "references are not allowed)", code="900", segment="Message"
                         ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise ParseError(f"not well-formed XML at line {line}, column {column}",
                         code="900", segment="Message") from None
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    count = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_ELEMENTS:
            raise ParseError(f"XML nested deeper than {MAX_DEPTH} or with more than "
                             f"{MAX_ELEMENTS} elements", code="900", segment="Message")
        if isinstance(element.tag, str):
            element.tag = local(element.tag)
        element.attrib = {local(k): v for k, v in element.attrib.items()}
        stack.extend((child, depth + 1) for child in element)
    return root, namespace
