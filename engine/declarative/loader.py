"""Reading a declarative mapping file into a `Mapping`, reporting every mistake at once as
`file:line:col: path: message`, the way channel files are reported.

Positions come from the config loader's `yaml_source.Document`, so a mapping file and a
channel file point at mistakes the same way; an expression's error points at the column
inside the expression where the YAML allows it (single-line values).
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path as FilePath
from typing import Any

import yaml

from engine.config.rules import FilterRule
from engine.config.yaml_source import Document, Path_, Pos, describe
from engine.declarative.expressions import Expr, ExpressionError, Path, parse, parse_path
from engine.declarative.functions import FUNCTIONS, SHIPPED_TABLES
from engine.declarative.template import (
    Const,
    DeclarativeMapping,
    Each,
    Guard,
    List,
    Node,
    Obj,
    Value,
)
from engine.errors import ConfigErrors
from engine.mapping_base import MAPPING_REF, Mapping
from engine.pipeline.filters import Rule

SETTINGS = ("mapping", "accepts", "emits", "description", "when", "required", "tables",
            "output")
NEEDED = ("mapping", "accepts", "emits", "output")
CONDITIONS = ("equals", "in", "not_in", "matches", "present")
_TABLE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")


class _Source(Document):
    """A mapping must map the same way on every host, so `${VAR}` is not interpolated."""

    def interpolate(self, text: str, node: yaml.Node, path: Path_) -> str:
        return text


def load(file: str | FilePath, expected_ref: str) -> Mapping:
    """The mapping in `file`, which must declare `expected_ref` (its place in mappings/);
    raises ConfigErrors listing every problem in the file."""
    doc = _Source.read(FilePath(file), {}, allow_empty=True)
    if doc.data is None and not doc.errors:
        doc.add("the file is empty; a declarative mapping needs " + ", ".join(
            f"`{k}:`" for k in NEEDED))
    if doc.errors:
        raise ConfigErrors(doc.errors)
    mapping = _Compiler(doc, expected_ref).build()
    if mapping is None:
        raise ConfigErrors(doc.errors)
    return mapping


class _Compiler:
    """Checks and compiles one document; every problem is added to `doc.errors`."""

    def __init__(self, doc: Document, expected_ref: str) -> None:
        self.doc = doc
        self.expected = expected_ref
        self.tables: dict[str, Any] = dict(SHIPPED_TABLES)

    # ---- errors

    def error(self, message: str, path: Path_, at: Pos | None = None) -> None:
        self.doc.add(message, path, at=at)

    def key_error(self, message: str, path: Path_) -> None:
        self.doc.add(message, path, at=self.doc.key_pos(path))

    def _column(self, path: Path_, written: str, offset: int) -> Pos:
        """Where character `offset` of the expression is, when the value is on one line
        as written (quoted or not); else where the value starts."""
        line, col = self.doc.pos(path)
        lines = self.doc.text.splitlines()
        found = lines[line - 1].find(written, col - 1) if line <= len(lines) else -1
        return (line, found + 1 + offset) if found >= 0 else (line, col)

    # ---- the file

    def build(self) -> Mapping | None:
        data = self.doc.data
        for key in data:
            if key not in SETTINGS:
                self.key_error(f"unknown setting `{key}`; known settings: "
                               f"{', '.join(SETTINGS)}", (key,))
        for key in NEEDED:
            if key not in data:
                self.error(f"`{key}:` is missing; a declarative mapping needs "
                           f"{', '.join(f'`{k}:`' for k in NEEDED)}", ())
        ref = self.ref(data.get("mapping"))
        accepts = data.get("accepts")
        if "accepts" in data and accepts != "hl7v2":
            self.error(f"declarative mappings read HL7v2 messages, so accepts must be hl7v2, "
                       f"got {describe(accepts)}", ("accepts",))
        emits = data.get("emits")
        if "emits" in data and not (isinstance(emits, str) and emits.strip()):
            self.error("emits names the output's content type, e.g. application/fhir+json",
                       ("emits",))
        if not isinstance(data.get("description", ""), str):
            self.error("description is text", ("description",))
        self.read_tables(data.get("tables"))
        guards = self.guards(data.get("when"))
        required = self.required(data.get("required"))
        output = self.output(data["output"]) if "output" in data else None
        if self.doc.errors or ref is None or output is None:
            return None
        name, _, version = ref.partition("@")
        run = DeclarativeMapping(ref, guards, required, output)
        return Mapping(name, int(version), "hl7v2", str(emits), run, self.doc.file)

    def ref(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not MAPPING_REF.match(value):
            self.error(f"mapping must look like name@1, got {describe(value)}", ("mapping",))
            return None
        if value != self.expected:
            self.error(f"declares {value}; a file at this place must declare exactly "
                       f"`mapping: {self.expected}`", ("mapping",))
            return None
        return value

    # ---- tables, when, required

    def read_tables(self, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.error("tables are written `name: {code: value, ...}`", ("tables",))
            return
        for name, table in value.items():
            path: Path_ = ("tables", name)
            if not _TABLE_NAME.match(name):
                self.key_error(f"table name `{name}` must be lower-case letters, digits and "
                               "dashes", path)
            elif name in SHIPPED_TABLES:
                self.key_error(f"table `{name}` is shipped with Conduit; give yours another "
                               "name so readers know which one is meant", path)
            elif not isinstance(table, dict) or not table:
                self.error(f"table `{name}` maps codes to values, e.g. {{I: IMP, O: AMB}}",
                           path)
            else:
                self.tables[name] = {code: _plain(v) for code, v in table.items()}

    def guards(self, value: Any) -> list[Guard]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error("when: is a list of rules, e.g. `- {field: MSH-9.1, in: [ADT]}`",
                       ("when",))
            return []
        guards = []
        for i, rule in enumerate(value):
            guard = self.guard(rule, ("when", i))
            if guard is not None:
                guards.append(guard)
        return guards

    def guard(self, rule: Any, path: Path_) -> Guard | None:
        if not isinstance(rule, dict):
            self.error("a when: rule is `field:` with one of " + ", ".join(CONDITIONS), path)
            return None
        for key in rule:
            if key not in ("field", *CONDITIONS, "reason"):
                self.key_error(f"unknown setting `{key}` in a when: rule; known: field, "
                               f"{', '.join(CONDITIONS)}, reason", (*path, key))
        given = [c for c in CONDITIONS if c in rule]
        if len(given) != 1:
            self.error(f"a when: rule takes exactly one of {', '.join(CONDITIONS)}; "
                       f"got {', '.join(given) or 'none'}", path)
            return None
        field = rule.get("field")
        if not isinstance(field, str):
            self.error("field: names what the rule tests, e.g. MSH-9.1", (*path, "field"))
            return None
        expr = self.expression(field, (*path, "field"))
        condition = self.condition(given[0], rule[given[0]], (*path, given[0]))
        reason = rule.get("reason")
        if reason is not None and not isinstance(reason, str):
            self.error("reason is the text of the skip", (*path, "reason"))
        if expr is None or condition is None:
            return None
        attr = {"in": "in_"}.get(given[0], given[0])
        return Guard(Rule(FilterRule(field=field.strip(), **{attr: condition})), expr,
                     reason if isinstance(reason, str) else None)

    def condition(self, kind: str, value: Any, path: Path_) -> Any:
        """The condition's value in the type FilterRule takes, or None (reported)."""
        if kind == "present":
            if isinstance(value, bool):
                return value
            self.error("present is true or false", path)
        elif kind in ("in", "not_in"):
            if isinstance(value, list) and value:
                texts = [self.scalar(v, (*path, i)) for i, v in enumerate(value)]
                return None if None in texts else texts
            self.error(f"{kind} is a list of values, e.g. [ADT, ORU]", path)
        elif kind == "matches":
            if isinstance(value, str):
                try:
                    re.compile(value)
                    return value
                except re.error as exc:
                    self.error(f"not a valid regular expression: {exc}", path)
            else:
                self.error("matches is a regular expression in quotes", path)
        else:
            return self.scalar(value, path)
        return None

    def scalar(self, value: Any, path: Path_) -> str | None:
        """A YAML scalar as text, spelled as written (`01` stays "01", `yes` stays "yes")."""
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return self.doc.raw.get(path, str(value))
        self.error(f"expected a value such as ADT, got {describe(value)}", path)
        return None

    def required(self, value: Any) -> list[Path]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error("required: is a list of fields, e.g. [PID-3, PID-5]", ("required",))
            return []
        paths = []
        for i, text in enumerate(value):
            path = self.path(text, ("required", i))
            if path is not None:
                paths.append(path)
        return paths

    def path(self, text: Any, path: Path_) -> Path | None:
        """A bare HL7 path (`required:`, `each:`); a leading `=` is tolerated."""
        if not isinstance(text, str):
            self.error(f"expected an HL7 path such as PID-3, got {describe(text)}", path)
            return None
        written = text.strip().removeprefix("=").strip()
        try:
            return parse_path(written)
        except ExpressionError as exc:
            self.error(exc.message, path)
            return None

    # ---- output

    def expression(self, written: str, path: Path_) -> Expr | None:
        """Parse `written` (with or without its leading `=`), reporting the exact column."""
        skip = len(written) - len(written.lstrip())
        source = written[skip:]
        if source.startswith("="):
            skip, source = skip + 1, source[1:]
        try:
            return parse(source, FUNCTIONS, self.tables)
        except ExpressionError as exc:
            at = self._column(path, written, skip + exc.offset)
            self.error(f"{exc.message} (in `{written.strip()}`)", path, at=at)
            return None

    def output(self, value: Any) -> Node | None:
        if not isinstance(value, dict | list) or not value:
            self.error("output is the JSON to produce, written as YAML (e.g. resourceType: "
                       "Patient ...)", ("output",))
            return None
        return self.node(value, ("output",))

    def node(self, value: Any, path: Path_) -> Node:
        if isinstance(value, str):
            if value.startswith("=="):
                return Const(value[1:])  # a literal text that starts with "="
            if value.startswith("="):
                expr = self.expression(value, path)
                return Value(expr) if expr is not None else Const(None)
            return Const(value or None)
        if isinstance(value, dict):
            if "each" in value:
                self.key_error("each: makes list items; write it as a list item: "
                               "`- each: PID-3`", (*path, "each"))
            return Obj([(k, self.node(v, (*path, k))) for k, v in value.items() if k != "each"])
        if isinstance(value, list):
            return List([
                self.each(item, (*path, i)) if isinstance(item, dict) and "each" in item
                else self.node(item, (*path, i))
                for i, item in enumerate(value)
            ])
        return Const(_plain(value))

    def each(self, item: dict[str, Any], path: Path_) -> Node:
        target = self.path(item["each"], (*path, "each"))
        if target is not None and (
            target.segrep is not None or target.rep is not None or "." in target.text
        ):
            self.error("each: takes a segment (OBX) or a field (PID-3), without indices or "
                       "components", (*path, "each"))
            target = None
        fields = {k: v for k, v in item.items() if k != "each"}
        if not fields:
            self.key_error("each: needs the fields of each item beside it", (*path, "each"))
        body = Obj([(k, self.node(v, (*path, k))) for k, v in fields.items()])
        return Each(target, body) if target is not None else Const(None)


def _plain(value: Any) -> Any:
    """A YAML constant as JSON: dates as ISO text, empty values as None (left out)."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if value == "" else value
