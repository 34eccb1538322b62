"""Safe reading of SCRIPT XML: defusedxml refuses DTDs, entity declarations and external
references (billion laughs, XXE) before anything is expanded; depth, element counts and
the number and length of attributes are bounded while the parser reads, so a hostile
message is refused at its first excess instead of after its whole tree is built. Element
names are read by their local names (the SCRIPT namespace, a prefix or none at all are
the same message). What is not well-formed is refused with the parser's reason, a fixed
phrase ("mismatched tag", "unclosed token"), never the text it stopped at."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pyexpat import ErrorString, errors

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from engine.errors import ParseError

MAX_DEPTH = 64  # a NewRx nests about 10 deep; nothing in SCRIPT needs more
MAX_ELEMENTS = 50_000
MAX_ATTRIBUTE = 4096  # SCRIPT attributes are qualifiers, versions and namespaces
MAX_ATTRIBUTES = 64  # per element: a Message has six version attributes, others one or two
_INVALID_TOKEN = errors.codes[errors.XML_ERROR_INVALID_TOKEN]


def local(tag: str) -> str:
    """`{namespace}Name` or `prefix:Name` as `Name`."""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _refused(text: str) -> ParseError:
    return ParseError(text, code="900", segment="Message")


class _BoundedBuilder:
    """An ElementTree builder that makes tags local and refuses, as each element starts,
    the element past MAX_DEPTH or MAX_ELEMENTS, with more than MAX_ATTRIBUTES attributes
    or one longer than MAX_ATTRIBUTE."""

    def __init__(self) -> None:
        self._tree = ET.TreeBuilder()
        self.depth = self.count = 0
        self.namespace: str | None = None
        self.data = self._tree.data  # text needs no check: the parser calls it directly
        self.close = self._tree.close

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self.depth += 1
        self.count += 1
        if self.depth > MAX_DEPTH or self.count > MAX_ELEMENTS:
            raise _refused(f"XML nested deeper than {MAX_DEPTH} or with more than "
                           f"{MAX_ELEMENTS} elements")
        if attrs:
            if len(attrs) > MAX_ATTRIBUTES:
                raise _refused(f"an XML element has more than {MAX_ATTRIBUTES} attributes")
            if any(len(v) > MAX_ATTRIBUTE for v in attrs.values()):
                raise _refused(f"an XML attribute is longer than {MAX_ATTRIBUTE} characters")
            attrs = {local(k): v for k, v in attrs.items()}
        if self.namespace is None:
            self.namespace = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
        return self._tree.start(local(tag), attrs)

    def end(self, tag: str) -> ET.Element:
        self.depth -= 1
        return self._tree.end(local(tag))


def _reason(code: int) -> str:
    if code == _INVALID_TOKEN:  # expat says "not well-formed (invalid token)"
        return ("a character XML forbids there, such as a bare & or < in text (written "
                "&amp; and &lt;), or a byte that is not in the declared encoding")
    return ErrorString(code)


def parse_xml(raw: bytes) -> tuple[ET.Element, str]:
    """The root element with every tag made local, and the root's namespace ("" when
    none); ParseError for what is not safe, well-formed, bounded XML."""
    builder = _BoundedBuilder()
    try:
        parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True,
                                  forbid_external=True)
        parser.feed(raw)
        root = parser.close()
    except DefusedXmlException as exc:
        raise _refused(f"refused XML: {type(exc).__name__} (DTDs, entities and external "
                       "references are not allowed)") from None
    except ET.ParseError as exc:
        # expat's reason is a fixed phrase ("mismatched tag", "not well-formed (invalid
        # token)" for bytes that are not the declared encoding ...), never message text
        line, column = exc.position
        raise _refused(f"not well-formed XML at line {line}, column {column} "
                       f"({_reason(exc.code)})") from None
    except (LookupError, ValueError):  # an encoding the parser cannot read (UnicodeError too)
        raise _refused("the XML declares an encoding that cannot be read") from None
    return root, builder.namespace or ""
