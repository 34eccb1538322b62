"""The expression language of declarative mappings: HL7 paths, 'text' and function calls.

    expression := path | text | call
    path       := SEG[n]-F[r].C.S     e.g. PID-5.1, PID-3[2].4.1, OBX[2]-5, MSH-9
    text       := 'single' or "double" quoted; a quote inside is written twice ('O''Hara')
    call       := name(expression, ...)       function names are lower case

A tiny grammar of our own, parsed once when the mapping is loaded into a tree of nodes
that is then only evaluated: there is no `eval`, so a mapping file can do nothing but read
the message it is given. Parse errors carry the offset in the expression, so the loader
can point at the exact column in the YAML file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.formats.hl7v2 import Hl7Message, Repetition, Segment
from engine.formats.hl7v2 import datatypes as dt

_PATH = re.compile(
    r"(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<segrep>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?\Z"
)
_WORD = re.compile(r"[A-Za-z0-9_\[\]\-.*]+")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ExpressionError(Exception):
    """An expression that cannot be parsed; `offset` is where in its text (0-based)."""

    def __init__(self, message: str, offset: int) -> None:
        self.message = message
        self.offset = offset
        super().__init__(message)


class Context:
    """One message being mapped, and the segment or repetition each `each:` is at.

    Inside `each: OBX`, paths into OBX read the current OBX; inside `each: PID-3`, paths
    into PID-3 read the current repetition. Everything else reads the whole message.
    """

    __slots__ = ("_offset", "_offset_read", "message", "reps", "segments")

    def __init__(self, message: Hl7Message) -> None:
        self.message = message
        self.segments: dict[str, tuple[Segment, int]] = {}
        self.reps: dict[tuple[str, int], tuple[Repetition, int]] = {}
        self._offset: str | None = None
        self._offset_read = False

    def inside(self, segment: tuple[str, Segment, int] | None = None,
               rep: tuple[str, int, Repetition, int] | None = None) -> Context:
        """A context for one iteration of `each:`, sharing the message and MSH-7 zone."""
        ctx = Context(self.message)
        ctx._offset, ctx._offset_read = self.sender_offset, True
        ctx.segments = dict(self.segments)
        ctx.reps = dict(self.reps)
        if segment is not None:
            name, seg, index = segment
            ctx.segments[name] = (seg, index)
            ctx.reps = {k: v for k, v in ctx.reps.items() if k[0] != name}
        if rep is not None:
            name, field, repetition, index = rep
            ctx.reps[(name, field)] = (repetition, index)
        return ctx

    @property
    def sender_offset(self) -> str | None:
        """The sender's time zone from MSH-7, read once per message."""
        if not self._offset_read:
            self._offset = dt.dtm_offset(self.message.segments[0].value(7))
            self._offset_read = True
        return self._offset


class Expr:
    """A parsed expression. `text` is its source, for error messages (never a value)."""

    __slots__ = ("offset", "text")

    def __init__(self, text: str, offset: int) -> None:
        self.text = text
        self.offset = offset

    def eval(self, ctx: Context) -> Any:
        raise NotImplementedError

    def field(self, ctx: Context) -> str | None:
        """The HL7 field this value is read from, for naming it in an error."""
        return None


class Text(Expr):
    __slots__ = ("value",)

    def __init__(self, text: str, offset: int, value: str) -> None:
        super().__init__(text, offset)
        self.value = value

    def eval(self, ctx: Context) -> str:
        return self.value


class Path(Expr):
    """An HL7 path; reads "" for anything absent and for the explicit null `""`."""

    __slots__ = ("comp", "fieldno", "free", "rep", "seg", "segrep", "sub")

    def __init__(self, text: str, offset: int, m: re.Match[str]) -> None:
        super().__init__(text, offset)
        self.seg: str = m["seg"]
        self.segrep = int(m["segrep"]) if m["segrep"] else None
        self.fieldno = int(m["field"]) if m["field"] else None
        self.rep = int(m["rep"]) if m["rep"] else None
        self.comp = int(m["comp"] or 1)
        self.sub = int(m["sub"] or 1)
        self.free = self.rep is None and self.segrep is None  # may follow an `each:`

    @property
    def is_segment(self) -> bool:
        return self.fieldno is None

    def segment(self, ctx: Context) -> Segment | None:
        """The segment this path reads: the current one inside `each:`, else the first
        (or the [n]th) in the message."""
        if self.segrep is None:
            bound = ctx.segments.get(self.seg)
            if bound is not None:
                return bound[0]
            return ctx.message.segment(self.seg)
        found = ctx.message.all(self.seg)
        return found[self.segrep - 1] if self.segrep <= len(found) else None

    def _bound_rep(self, ctx: Context) -> tuple[Repetition, int] | None:
        if self.free and ctx.reps:
            return ctx.reps.get((self.seg, self.fieldno or 0))
        return None

    def eval(self, ctx: Context) -> str:
        if ctx.reps:
            bound = self._bound_rep(ctx)
            if bound is not None:
                return dt.present(bound[0].value(self.comp, self.sub))
        seg = self.segment(ctx)
        if seg is None:
            return ""
        if self.fieldno is None:
            return seg.name  # "is there a PV1?" for present: and if(), never its content
        return dt.present(seg.value(self.fieldno, self.comp, self.sub, self.rep or 1))

    def present(self, ctx: Context) -> bool:
        """Whether the path holds a value; without a repetition index any repetition
        counts, so `required: [PID-3]` accepts an id sent in the second repetition."""
        seg = self.segment(ctx)
        if seg is None:
            return False
        if self.fieldno is None:
            return True
        if self.rep is not None or self._bound_rep(ctx) is not None:
            return bool(self.eval(ctx))
        return any(dt.present(r.value(self.comp, self.sub)) for r in seg.repetitions(self.fieldno))

    def field(self, ctx: Context) -> str:
        """The path as written, with the indices `each:` is at: `OBX[3]-5`, `PID-3[2].1`."""
        segrep, rep = self.segrep, self.rep
        if segrep is None and self.seg in ctx.segments:
            segrep = ctx.segments[self.seg][1]
        bound = self._bound_rep(ctx)
        if bound is not None:
            rep = bound[1]
        out = self.seg + (f"[{segrep}]" if segrep else "")
        if self.fieldno is None:
            return out
        out += f"-{self.fieldno}" + (f"[{rep}]" if rep else "")
        written = self.text.partition(".")[2]  # components and subcomponents as written
        return out + (f".{written}" if written else "")


Impl = Callable[[Context, "Call", list[Any]], Any]


@dataclass(frozen=True)
class Function:
    """A built-in function: its signature for people, its arity, and what it does."""

    signature: str
    doc: str
    impl: Impl
    min_args: int
    max_args: int | None = None  # None: any number
    prepare: Callable[[Call, Mapping[str, Mapping[str, Any]]], None] | None = None
    lazy: bool = False  # impl gets the unevaluated arguments (default and if stop early)


class Call(Expr):
    __slots__ = ("args", "data", "function", "name")

    def __init__(self, text: str, offset: int, name: str, function: Function,
                 args: list[Expr]) -> None:
        super().__init__(text, offset)
        self.name = name
        self.function = function
        self.args = args
        self.data: Any = None  # resolved at load time by Function.prepare (lookup's table)

    def eval(self, ctx: Context) -> Any:
        if self.function.lazy:
            return self.function.impl(ctx, self, self.args)
        return self.function.impl(ctx, self, [a.eval(ctx) for a in self.args])

    def field(self, ctx: Context) -> str | None:
        for arg in self.args:
            found = arg.field(ctx)
            if found:
                return found
        return None


def parse_path(text: str, offset: int = 0) -> Path:
    """An HL7 path on its own (for `each:` and `required:`)."""
    m = _PATH.match(text)
    if m is None:
        raise ExpressionError(
            f"`{text}` is not an HL7 path (write it like PID-5.1, PID-3[2].4 or OBX-5)", offset)
    for group, what in (("segrep", "segments"), ("field", "fields"), ("rep", "repetitions"),
                        ("comp", "components"), ("sub", "subcomponents")):
        if m[group] is not None and int(m[group]) == 0:
            raise ExpressionError(f"`{text}`: {what} count from 1", offset)
    return Path(text, offset, m)


def parse(text: str, functions: Mapping[str, Function],
          tables: Mapping[str, Mapping[str, Any]]) -> Expr:
    """Parse one expression; raises ExpressionError with the offset of the problem."""
    parser = _Parser(text, functions, tables)
    expr = parser.expression()
    parser.skip_space()
    if parser.i < len(text):
        raise ExpressionError(
            f"unexpected `{text[parser.i]}` after a complete expression (join values with "
            "concat(...); put text in quotes)", parser.i)
    return expr


class _Parser:
    """Recursive descent over the grammar in the module docstring."""

    def __init__(self, text: str, functions: Mapping[str, Function],
                 tables: Mapping[str, Mapping[str, Any]]) -> None:
        self.text = text
        self.functions = functions
        self.tables = tables
        self.i = 0

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def expression(self) -> Expr:
        self.skip_space()
        if self.i >= len(self.text):
            raise ExpressionError("expected a value: a field such as PID-5.1, 'text' in "
                                  "quotes, or a function call", self.i)
        c = self.text[self.i]
        if c in "'\"":
            return self.quoted(c)
        word = _WORD.match(self.text, self.i)
        if word is None:
            raise ExpressionError(f"unexpected `{c}`", self.i)
        start, self.i = self.i, word.end()
        after = self.text[self.i:].lstrip()[:1]
        name = word[0]
        if after == "(":
            return self.call(name, start)
        if _NAME.fullmatch(name):
            raise ExpressionError(f"`{name}` is neither a field nor a function call; text "
                                  f"goes in quotes: '{name}'", start)
        return parse_path(name, start)

    def quoted(self, quote: str) -> Text:
        start = self.i
        out: list[str] = []
        i = start + 1
        while True:
            end = self.text.find(quote, i)
            if end < 0:
                raise ExpressionError(f"text starting here is not closed with {quote}", start)
            out.append(self.text[i:end])
            if self.text.startswith(quote * 2, end):
                out.append(quote)
                i = end + 2
                continue
            self.i = end + 1
            return Text(self.text[start:self.i], start, "".join(out))

    def call(self, name: str, start: int) -> Call:
        function = self.functions.get(name)
        if function is None:
            hint = "; function names are lower case" if name.lower() in self.functions else ""
            raise ExpressionError(f"unknown function {name}(){hint}; known: "
                                  f"{', '.join(sorted(self.functions))}", start)
        self.skip_space()
        self.i += 1  # the "("
        args: list[Expr] = []
        self.skip_space()
        if self.text.startswith(")", self.i):
            self.i += 1
        else:
            while True:
                args.append(self.expression())
                self.skip_space()
                nxt = self.text[self.i:self.i + 1]
                self.i += 1
                if nxt == ")":
                    break
                if nxt != ",":
                    raise ExpressionError(f"expected `,` or `)` in {name}(...)", self.i - 1)
        call = Call(self.text[start:self.i], start, name, function, args)
        _check_arity(call)
        if function.prepare is not None:
            function.prepare(call, self.tables)
        return call


def _check_arity(call: Call) -> None:
    f, n = call.function, len(call.args)
    if n < f.min_args or (f.max_args is not None and n > f.max_args):
        if f.max_args is None:
            wanted = f"at least {f.min_args}"
        elif f.min_args == f.max_args:
            wanted = str(f.min_args)
        else:
            wanted = f"{f.min_args} to {f.max_args}"
        raise ExpressionError(f"{f.signature} takes {wanted} argument(s), got {n}", call.offset)
