"""The built-in functions of declarative mappings and the HL7 tables shipped with them.

Each function is small and pure: it sees the values of its arguments (and the message's
context for the sender's time zone), never the file system, the clock or the network, so
a declarative mapping stays a function of its message like every Python one. Date and
table errors name the field they were read from, never its value.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from engine.declarative.expressions import (
    Call,
    Context,
    Expr,
    ExpressionError,
    Function,
    Text,
)
from engine.errors import MappingError
from engine.formats.hl7v2 import datatypes as dt
from engine.formats.hl7v2 import tables as hl7
from engine.maplib.fhir import ID_NAMESPACE

# Shipped tables, named for what they translate; the HL7 table number is in the docs.
SHIPPED_TABLES: dict[str, Mapping[str, Any]] = {
    "administrative-sex": hl7.ADMINISTRATIVE_SEX,  # 0001 -> Patient.gender
    "patient-class": {k: c.as_fhir() for k, c in hl7.PATIENT_CLASS.items()},  # 0004 -> Coding
    "identifier-type": {  # 0203 -> Coding
        k: {"system": hl7.V2_0203, "code": k, "display": v}
        for k, v in hl7.IDENTIFIER_TYPE.items()
    },
    "name-use": hl7.NAME_USE,  # 0200 -> HumanName.use
    "address-use": hl7.ADDRESS_USE,  # 0190 -> Address.use
    "address-type": hl7.ADDRESS_TYPE,  # 0190 -> Address.type
    "telecom-use": hl7.TELECOM_USE,  # 0201 -> ContactPoint.use
    "telecom-system": hl7.TELECOM_SYSTEM,  # 0202 -> ContactPoint.system
}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _text(value: Any, call: Call) -> str:
    """An argument as text; a table entry holding an object cannot be joined or cased."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise MappingError(f"{call.name}() needs text, but got a table entry holding "
                       f"{'a list' if isinstance(value, list) else 'an object'} "
                       f"(in `{call.text}`)")


def _where(ctx: Context, call: Call) -> str:
    """The field to name in an error: the first path in the call, else the call itself."""
    return call.field(ctx) or f"`{call.text}`"


def _date(ctx: Context, call: Call, args: list[Any]) -> str:
    return dt.to_fhir_date(_text(args[0], call), _where(ctx, call)) or ""


def _datetime(ctx: Context, call: Call, args: list[Any]) -> str:
    value = _text(args[0], call)
    if not value:
        return ""
    return dt.to_fhir_datetime(value, _where(ctx, call), ctx.sender_offset) or ""


def _lookup(ctx: Context, call: Call, args: list[Any]) -> Any:
    value = _text(args[1], call)
    if not value:
        return args[2] if len(args) == 3 else ""
    table_name, table = call.data
    for key in (value, value.upper()):
        if key in table:
            found = table[key]
            if _empty(found) and len(args) == 3:
                return args[2]
            return _copy(found)
    if len(args) == 3:
        return args[2]
    raise MappingError(f"is not a code in table {table_name}; add it to the table or give "
                       f"lookup() a default", field=call.args[1].field(ctx) or f"`{call.text}`")


def _copy(value: Any) -> Any:
    """A table entry for one output: outputs never share (and so never alter) a table's
    objects. Entries are JSON, so this is cheaper than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _prepare_lookup(call: Call, tables: Mapping[str, Mapping[str, Any]]) -> None:
    """The table is named by quoted text and must exist when the mapping is loaded."""
    name_arg = call.args[0]
    if not isinstance(name_arg, Text):
        raise ExpressionError("lookup() names its table in quotes, e.g. lookup('visit-class', "
                              "PV1-2)", name_arg.offset)
    table = tables.get(name_arg.value)
    if table is None:
        raise ExpressionError(f"unknown table '{name_arg.value}'; known: "
                              f"{', '.join(sorted(tables))}", name_arg.offset)
    call.data = (name_arg.value, table)


def _concat(ctx: Context, call: Call, args: list[Any]) -> str:
    parts = [_text(a, call) for a in args]
    return "" if "" in parts else "".join(parts)


def _join(ctx: Context, call: Call, args: list[Any]) -> str:
    separator = _text(args[0], call)
    return separator.join(p for p in (_text(a, call) for a in args[1:]) if p)


def _default(ctx: Context, call: Call, args: list[Expr]) -> Any:
    for arg in args:  # stops at the first value: later fallbacks are not even read
        value = arg.eval(ctx)
        if not _empty(value):
            return value
    return ""


def _if(ctx: Context, call: Call, args: list[Expr]) -> Any:
    if not _empty(args[0].eval(ctx)):
        return args[1].eval(ctx)
    return args[2].eval(ctx) if len(args) == 3 else ""


def _id(ctx: Context, call: Call, args: list[Any]) -> str:
    parts = [_text(a, call) for a in args]
    if "" in parts:
        return ""
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(parts)))


def _system(ctx: Context, call: Call, args: list[Any]) -> str:
    return dt.hd_system(*(_text(a, call) for a in args)) or ""


def _upper(ctx: Context, call: Call, args: list[Any]) -> str:
    return _text(args[0], call).upper()


def _lower(ctx: Context, call: Call, args: list[Any]) -> str:
    return _text(args[0], call).lower()


def _trim(ctx: Context, call: Call, args: list[Any]) -> str:
    return _text(args[0], call).strip()


FUNCTIONS: dict[str, Function] = {
    "date": Function("date(value)", "HL7 date/time -> FHIR date (YYYY[-MM[-DD]])", _date, 1, 1),
    "datetime": Function(
        "datetime(value)", "HL7 date/time -> FHIR dateTime; a time without a zone takes "
        "the sender's from MSH-7, else only its date is kept", _datetime, 1, 1),
    "lookup": Function(
        "lookup(table, value[, default])", "the table's entry for the code (as sent, then "
        "upper case); default for an empty or unknown code, and without one an unknown "
        "code fails naming the field",
        _lookup, 2, 3, _prepare_lookup),
    "concat": Function("concat(a, b, ...)", "the parts joined; empty if any part is empty",
                       _concat, 2),
    "join": Function("join(separator, a, ...)", "the non-empty parts joined by separator",
                     _join, 2),
    "default": Function("default(value, fallback, ...)", "the first non-empty argument",
                        _default, 2, lazy=True),
    "if": Function("if(test, then[, else])", "then when test is not empty, else else (or "
                   "nothing)", _if, 2, 3, lazy=True),
    "id": Function("id(type, part, ...)", "a deterministic resource id (uuid5); empty if "
                   "any part is empty", _id, 2),
    "system": Function(
        "system(namespace[, universal-id[, id-type]])", "Identifier.system for an HL7 "
        "assigning authority: OID -> urn:oid:..., URI as is, else urn:conduit:id:<name>",
        _system, 1, 3),
    "upper": Function("upper(value)", "upper case", _upper, 1, 1),
    "lower": Function("lower(value)", "lower case", _lower, 1, 1),
    "trim": Function("trim(value)", "without leading and trailing spaces", _trim, 1, 1),
}
