"""A loaded declarative mapping: guards, required fields and the output template, run
against one message.

The template is compiled once into nodes; rendering walks them and leaves out every
empty value on the way (FHIR forbids empty strings, arrays and objects), so an object
whose every element came out empty disappears as a whole instead of being sent as `{}`.
"""

from __future__ import annotations

from typing import Any

from engine.declarative.expressions import Context, Expr, Path
from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.mapping_base import Skip
from engine.pipeline.filters import Rule


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class Node:
    """One part of the output template."""

    __slots__ = ()

    def render(self, ctx: Context) -> Any:
        """The value, or None when it is empty and must be left out."""
        raise NotImplementedError


class Const(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, ctx: Context) -> Any:
        return self.value


class Value(Node):
    __slots__ = ("expr",)

    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def render(self, ctx: Context) -> Any:
        value = self.expr.eval(ctx)
        return None if _empty(value) else value


class Obj(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[tuple[str, Node]]) -> None:
        self.items = items

    def render(self, ctx: Context) -> dict[str, Any] | None:
        out = {}
        for key, node in self.items:
            value = node.render(ctx)
            if value is not None:
                out[key] = value
        return out or None


class Each(Node):
    """`- each: OBX` or `- each: PID-3`: one list item per segment or repetition."""

    __slots__ = ("body", "path")

    def __init__(self, path: Path, body: Obj) -> None:
        self.path = path
        self.body = body

    def expand(self, ctx: Context) -> list[Any]:
        path, out = self.path, []
        if path.is_segment:
            for index, seg in enumerate(ctx.message.all(path.seg), start=1):
                out.append(self.body.render(ctx.inside(segment=(path.seg, seg, index))))
        else:
            seg = path.segment(ctx)
            fieldno = path.fieldno or 0
            reps = seg.repetitions(fieldno) if seg is not None else []
            for index, rep in enumerate(reps, start=1):
                out.append(self.body.render(ctx.inside(rep=(path.seg, fieldno, rep, index))))
        return [item for item in out if item is not None]

    def render(self, ctx: Context) -> list[Any] | None:
        return self.expand(ctx) or None


class List(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def render(self, ctx: Context) -> list[Any] | None:
        out: list[Any] = []
        for node in self.items:
            if isinstance(node, Each):
                out.extend(node.expand(ctx))
            else:
                value = node.render(ctx)
                if value is not None:
                    out.append(value)
        return out or None


class Guard:
    """One `when:` rule, in the words of a channel filter rule; failing it skips."""

    __slots__ = ("expr", "reason", "rule")

    def __init__(self, rule: Rule, expr: Expr, reason: str | None) -> None:
        self.rule = rule
        self.expr = expr
        self.reason = reason or f"when: {rule.text} does not hold"

    def holds(self, ctx: Context) -> bool:
        value = self.expr.eval(ctx)
        return self.rule.holds(lambda _field: value if isinstance(value, str) else str(value))


class DeclarativeMapping:
    """The callable a declarative file becomes: guards, then required, then output."""

    def __init__(self, ref: str, guards: list[Guard], required: list[Path],
                 output: Node) -> None:
        self.ref = ref
        self.guards = guards
        self.required = required
        self.output = output

    def __call__(self, message: Any) -> Any:
        if not isinstance(message, Hl7Message):
            raise MappingError(f"{self.ref} reads HL7v2 messages, got "
                               f"{type(message).__name__}")
        ctx = Context(message)
        for guard in self.guards:
            if not guard.holds(ctx):
                return Skip(guard.reason)
        for path in self.required:
            if not path.present(ctx):
                raise MappingError("is required by this mapping but is missing or empty",
                                   field=path.text)
        out = self.output.render(ctx)
        if out is None:
            raise MappingError(f"{self.ref} made an empty output from this message")
        return out
