"""FHIR XML (application/fhir+xml) to and from the FHIR JSON form the engine works on.

A request body in XML becomes, here, the JSON a JSON sender would have sent; from then on
the channel knows only JSON (the stored message is JSON). Answers go the other way.

Why a walker of our own over the library's `model_validate_xml`/`model_dump_xml`:
fhir.resources reads XML into its pydantic models, and its dumps then change what the
sender wrote: a decimal `7.20` comes out as the float 7.2 and `10:15:00.120Z` as
`10:15:00.120000Z`. The engine keeps a decimal's digits (its precision) and a time as
written, so this module uses the R4B models only as the schema (which elements repeat,
which are primitives of which type, the element order XML requires) and copies values
as text: decimals become `decimal.Decimal`, integers `int`, booleans `bool`, every other
primitive the string as sent.

Hardening: XML from the network is parsed by lxml with entity resolution, DTD loading
and network access off and libxml2's size and depth limits on (huge_tree off: 256
levels), and a body with a DOCTYPE is refused before it is parsed (no FHIR XML has one;
it is where billion-laughs and external entities live). Every error text is built from
our own words and schema element names, never from the body's values or names, because
it is sent back and may be logged.
"""

from __future__ import annotations

import decimal
import functools
import re
from collections.abc import Iterator
from typing import Any, NamedTuple, get_args, get_origin

from lxml import etree

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_F = "{" + FHIR_NS + "}"
_KIND = re.compile(r"[A-Z][A-Za-z]{0,63}\Z")
_INTEGER = re.compile(r"[+-]?[0-9]{1,10}\Z")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
MAX_CHILDREN = 10_000  # as the JSON path's MAX_ARRAY_ITEMS: more is a costly body


class XmlError(ValueError):
    """A body that is no FHIR XML. `str()` and `expression` are safe to send and log."""

    def __init__(self, text: str, expression: str | None = None,
                 code: str = "structure") -> None:
        super().__init__(text)
        self.expression = expression
        self.code = code


class _Field(NamedTuple):
    repeats: bool
    kind: str  # "primitive", "complex" or "resource"
    type: str  # the FHIR primitive type, or the model class name


class _Schema(NamedTuple):
    fields: dict[str, _Field]
    order: tuple[str, ...]


# ---------------------------------------------------------------------- schema


@functools.cache  # keyed by schema class names only: bounded by R4B
def _schema(class_name: str) -> _Schema:
    """The elements of a model class by JSON/XML name, and their order."""
    from fhir.resources.R4B import get_fhir_model_class  # the models load on first use
    from fhir_core.utils import get_fhir_type_name, is_list_type, is_primitive_type

    klass = get_fhir_model_class(class_name)
    fields: dict[str, _Field] = {}
    for name, info in klass.model_fields.items():
        alias = info.alias or name
        if name == "fhir_comments" or name.endswith("__ext") or name == "resource_type":
            continue
        if is_primitive_type(info):
            fields[alias] = _Field(is_list_type(info), "primitive",
                                   get_fhir_type_name(info))
            continue
        inner = info.annotation
        while get_origin(inner) is not None:
            inner = next(a for a in get_args(inner) if a is not type(None))
        type_name = inner.__name__.removesuffix("Type")
        fields[alias] = _Field(is_list_type(info),
                               "resource" if type_name == "Resource" else "complex", type_name)
    return _Schema(fields, tuple(klass.elements_sequence()))


@functools.lru_cache(maxsize=512)
def _is_resource(kind: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        klass = get_fhir_model_class(kind)
    except ValueError:
        return False
    return issubclass(klass, get_fhir_model_class("Resource"))


def _parser() -> etree.XMLParser:
    """A parser per call: lxml parsers must not be shared between threads."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True, collect_ids=False)


# ---------------------------------------------------------------------- XML to JSON


def to_json(raw: bytes) -> dict[str, Any]:
    """The FHIR JSON form of a FHIR XML resource, or XmlError."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise XmlError("a DOCTYPE or entity declaration is not allowed in FHIR XML",
                       code="security")
    try:
        root = etree.fromstring(raw, _parser())
    except (etree.XMLSyntaxError, ValueError):
        raise XmlError("the body is not well-formed XML") from None
    info = root.getroottree().docinfo
    if info.doctype:  # declared in an encoding the byte check above cannot see
        raise XmlError("a DOCTYPE is not allowed in FHIR XML", code="security")
    if (info.encoding or "UTF-8").upper() != "UTF-8":
        raise XmlError("FHIR XML must be UTF-8")
    try:
        return _resource(root, "")
    except RecursionError:
        raise XmlError("the body is nested too deeply to be a FHIR resource") from None


def _resource(element: etree._Element, where: str) -> dict[str, Any]:
    qname = etree.QName(element)
    if qname.namespace != FHIR_NS:
        raise XmlError("a FHIR resource must be in the namespace http://hl7.org/fhir",
                       where or None)
    kind = qname.localname
    if not _KIND.match(kind) or not _is_resource(kind):
        raise XmlError("the element is not a FHIR R4 resource type", where or None,
                       code="not-supported")
    out: dict[str, Any] = {"resourceType": kind}
    out.update(_element(element, kind, f"{where}.{kind}" if where else kind, resource=True))
    return out


def _element(element: etree._Element, class_name: str, path: str, *,
             resource: bool = False) -> dict[str, Any]:
    """The JSON object of a complex element (or a resource's body)."""
    out: dict[str, Any] = {}
    for name, value in element.attrib.items():
        if name == "id" and not resource:
            out["id"] = value
        elif name == "url" and class_name == "Extension":
            out["url"] = value
        else:
            raise XmlError("an attribute FHIR XML does not have here", path)
    if len(element) > MAX_CHILDREN:
        raise XmlError(f"an element holds more than {MAX_CHILDREN} elements", path,
                       code="too-costly")
    schema = _schema(class_name)
    exts: dict[str, list[Any]] = {}
    for child in _children(element, path):
        qname = etree.QName(child)
        name = qname.localname
        field = schema.fields.get(name)
        if field is None or (qname.namespace != FHIR_NS and field.type != "xhtml"):
            raise XmlError("an element this type does not have", path)
        at = f"{path}.{name}"
        if field.kind == "primitive":
            value, ext = _primitive(child, field.type, at)
        elif field.kind == "resource":
            inner = list(_children(child, at))
            if len(inner) != 1:
                raise XmlError("must hold exactly one resource", at)
            value, ext = _resource(inner[0], at), None
        else:
            value, ext = _element(child, field.type, at), None
        if field.repeats:
            out.setdefault(name, []).append(value)
            exts.setdefault(name, []).append(ext)
        elif name in out or f"_{name}" in out:
            raise XmlError("an element that may occur once occurs again", at)
        else:
            if value is not None:
                out[name] = value
            if ext is not None:
                out[f"_{name}"] = ext
    for name, items in exts.items():
        if any(e is not None for e in items):
            out[f"_{name}"] = items
    return out


def _children(element: etree._Element, path: str) -> Iterator[etree._Element]:
    """The element children (comments and processing instructions are parsed away);
    text between them must be whitespace."""
    if element.text and element.text.strip():
        raise XmlError("text where FHIR XML has elements only", path)
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tail and child.tail.strip():
            raise XmlError("text where FHIR XML has elements only", path)
        yield child


def _primitive(element: etree._Element, type_name: str, path: str) -> tuple[Any, Any]:
    """(the JSON value, the `_name` object of its id and extensions or None)."""
    if type_name == "xhtml":
        if etree.QName(element).namespace != XHTML_NS:
            raise XmlError("a narrative div must be XHTML", path)
        return etree.tostring(element, encoding="unicode", with_tail=False), None
    ext: dict[str, Any] = {}
    text = None
    for name, value in element.attrib.items():
        if name == "value":
            text = value
        elif name == "id":
            ext["id"] = value
        else:
            raise XmlError("an attribute FHIR XML does not have here", path)
    extensions = []
    for child in _children(element, path):
        if etree.QName(child).namespace != FHIR_NS or etree.QName(child).localname != \
                "extension":
            raise XmlError("a primitive element holds only extensions", path)
        extensions.append(_element(child, "Extension", f"{path}.extension"))
    if extensions:
        ext["extension"] = extensions
    if text is None and not ext:
        raise XmlError("an element with neither a value nor an extension", path,
                       code="required")
    return (None if text is None else _value(text, type_name, path)), (ext or None)


def _value(text: str, type_name: str, path: str) -> Any:
    if type_name == "boolean":
        if text not in ("true", "false"):
            raise XmlError("not a boolean (true or false)", path, code="value")
        return text == "true"
    if type_name in _INTEGERS:
        if not _INTEGER.match(text):
            raise XmlError("not an integer", path, code="value")
        return int(text)
    if type_name == "decimal":
        if not _DECIMAL.match(text):
            raise XmlError("not a decimal", path, code="value")
        return decimal.Decimal(text)  # keeps its digits: 7.20 stays 7.20
    return text


# ---------------------------------------------------------------------- JSON to XML


def to_xml(resource: dict[str, Any]) -> bytes:
    """The FHIR XML of a resource in JSON form (an answer: an OperationOutcome, a
    response Bundle, a representation, the CapabilityStatement). Elements the R4B
    schema does not know are left out; XmlError when the JSON is no resource."""
    try:
        root = _build(resource, "")
    except RecursionError:
        raise XmlError("the resource is nested too deeply") from None
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _build(resource: dict[str, Any], path: str) -> etree._Element:
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not _KIND.match(kind) or not _is_resource(kind):
        raise XmlError("not a FHIR R4 resource", path or None)
    root = etree.Element(_F + kind, nsmap={None: FHIR_NS})
    _fill(root, resource, kind, kind, resource=True)
    return root


def _fill(node: etree._Element, obj: dict[str, Any], class_name: str, path: str, *,
          resource: bool = False) -> None:
    if not resource and isinstance(obj.get("id"), str):
        node.set("id", obj["id"])
    if class_name == "Extension" and isinstance(obj.get("url"), str):
        node.set("url", obj["url"])
    schema = _schema(class_name)
    for name in schema.order:
        if name not in obj and f"_{name}" not in obj:
            continue
        if (name == "id" and not resource) or (name == "url" and class_name == "Extension"):
            continue
        field = schema.fields[name]
        values, exts = obj.get(name), obj.get(f"_{name}")
        if field.repeats:
            values = values if isinstance(values, list) else []
            exts = exts if isinstance(exts, list) else []
            count = max(len(values), len(exts))
            pairs = [(values[i] if i < len(values) else None,
                      exts[i] if i < len(exts) else None) for i in range(count)]
        else:
            pairs = [(values, exts)]
        at = f"{path}.{name}"
        for value, ext in pairs:
            if field.kind == "primitive":
                _put_primitive(node, name, field.type, value, ext, at)
            elif isinstance(value, dict) and field.kind == "resource":
                etree.SubElement(node, _F + name).append(_build(value, at))
            elif isinstance(value, dict):
                _fill(etree.SubElement(node, _F + name), value, field.type, at)


def _put_primitive(node: etree._Element, name: str, type_name: str, value: Any, ext: Any,
                   path: str) -> None:
    if type_name == "xhtml":
        if isinstance(value, str):
            try:
                node.append(etree.fromstring(value.encode(), _parser()))
            except (etree.XMLSyntaxError, ValueError):
                raise XmlError("a narrative div that is not XHTML", path) from None
        return
    ext = ext if isinstance(ext, dict) else {}
    if value is None and not ext:
        return
    child = etree.SubElement(node, _F + name)
    if isinstance(ext.get("id"), str):
        child.set("id", ext["id"])
    if value is not None:
        child.set("value", _text(value))
    for item in ext.get("extension") or []:
        if isinstance(item, dict):
            _fill(etree.SubElement(child, _F + "extension"), item, "Extension",
                  f"{path}.extension")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)  # Decimal keeps its digits; floats as Python writes them
