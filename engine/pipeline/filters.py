"""Channel filters: rules that decide whether a message is taken on.

A message must satisfy every rule; the first rule it fails is recorded as the reason it
was filtered, in words an analyst recognises from the channel file. Two kinds of rule:

- field rules (`field:` plus one condition) read one value through the codec's field
  notation (MSH-9.1 for HL7v2; a dotted path such as `meta.source` or
  `identifier.0.value` for FHIR) and compare it as text;
- FHIRPath rules (`fhirpath:`, FHIR channels only) evaluate an expression against the
  resource with fhirpathpy and the R4 model (so `Observation.value` finds valueQuantity
  and dates compare as dates). The rule holds when the result is not empty and not all
  `false`: `Patient.birthDate < @2000-01-01` holds for [true] and fails for [false],
  and for [] when there is no birthDate; `Patient.telecom` holds when one is there.

Expressions are checked once, when the configuration is: fhirpathpy's own parser
recovers silently from syntax errors (`1 +* 2` evaluates to 3, an unclosed `where(`
compiles), so the grammar is run strictly first, then every function and %constant is
checked against what fhirpathpy implements (`memberOf`, `resolve` are not).

An expression that raises while evaluating a message (a Quantity compared with a unit
literal, which fhirpathpy cannot do on FHIR JSON, say) is a FilterError: the channel
keeps the message as errored, for an analyst to fix the rule and reprocess, rather than
dropping it as filtered. Only the exception's type is said: its text can quote the data.

Evaluation is bounded by the resource and the expression, nothing else: no loops, no
I/O. It is not fast (about 45 us per element a `where` visits; 60-140 us per rule on
a typical Patient), so the channel's step (`Filtering`) runs these rules in a worker
thread for messages over 16 KiB, and the source's size limit is what bounds a hostile
resource: a rule comparing every element with every other (`x.where(y in
%resource...)`) is quadratic, and no check can tell; keep rules linear.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.models import models
from fhirpathpy.parser import parse
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from engine.config.rules import FilterRule
from engine.message import Parsed

FieldReader = Callable[[str], str]
Evaluator = Callable[[Any], list[Any]]

_R4 = models["r4"]
# %-constants an expression may name: the spec's environment variables we provide.
_CONSTANTS = frozenset({"resource", "rootResource", "context", "ucum"})


class ResourceCheck(Protocol):
    """A rule that reads the whole parsed resource rather than one field."""

    def failure(self, resource: Any) -> str | None:
        """None when the resource passes, else the reason it is filtered."""
        ...


class Rule:
    """A field rule: one field, one condition."""

    def __init__(self, rule: FilterRule) -> None:
        assert rule.field is not None, "a field rule needs a field"
        self.field = rule.field
        self._test, self.text = _compile(rule)

    def holds(self, read: FieldReader) -> bool:
        return self._test(read(self.field))


def _compile(rule: FilterRule) -> tuple[Callable[[str], bool], str]:
    f = rule.field
    if rule.equals is not None:
        expected = rule.equals
        return (lambda v: v == expected), f"{f} equals {expected!r}"
    if rule.in_ is not None:
        allowed = frozenset(rule.in_)
        return (lambda v: v in allowed), f"{f} in {sorted(allowed)}"
    if rule.not_in is not None:
        banned = frozenset(rule.not_in)
        return (lambda v: v not in banned), f"{f} not in {sorted(banned)}"
    if rule.matches is not None:
        pattern = re.compile(rule.matches)
        return (lambda v: pattern.search(v) is not None), f"{f} matches {rule.matches!r}"
    if rule.present is not None:
        want = rule.present
        return (lambda v: bool(v) == want), f"{f} is {'present' if want else 'empty'}"
    raise ValueError(f"filter rule on {f} has no condition")


class FhirPathError(ValueError):
    """An expression that does not parse, or calls what the engine cannot evaluate."""


class FilterError(Exception):
    """A rule that could not be evaluated on a message; the text is PHI-free."""


class FhirPathRule:
    """A FHIRPath rule, compiled once."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._evaluate = compile_fhirpath(expression)
        self.text = f"fhirpath {expression}"

    def failure(self, resource: Any) -> str | None:
        try:
            result = self._evaluate(resource)
        except Exception as exc:  # fhirpathpy raises bare Exceptions on bad types
            raise FilterError(f"{self.text} could not be evaluated on this message "
                              f"({type(exc).__name__})") from None
        return None if truthy(result) else self.text


def truthy(result: list[Any]) -> bool:
    """FHIRPath result as a rule's verdict: not empty, and not all `false`."""
    return bool(result) and not all(item is False for item in result)


def compile_fhirpath(expression: str) -> Evaluator:
    """The evaluator of `expression` (resource -> result collection), or FhirPathError
    saying what is wrong and where. fhirpathpy's own parser recovers from syntax errors
    silently (`Patient.name.where(` compiles), so the syntax is checked here first."""
    if not expression.strip():
        raise FhirPathError("the expression is empty")
    _check_syntax(expression)
    _check_calls(parse(expression))
    compiled = fhirpathpy.compile(expression, model=_R4)

    def evaluate(resource: Any) -> list[Any]:
        return compiled(resource, {"resource": resource, "rootResource": resource})

    return evaluate


class _Errors(ErrorListener):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int,
                    column: int, msg: str, e: Any) -> None:
        self.found.append((column, msg))


def _check_syntax(expression: str) -> None:
    errors = _Errors()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(errors)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(errors)
    parser.entireExpression()
    if errors.found:
        column, msg = errors.found[0]
        msg = re.sub(r" expecting \{.*\}\Z", "", msg, flags=re.DOTALL)
        msg = msg.replace("mismatched input '<EOF>'", "the expression ends too early")
        raise FhirPathError(f"not valid FHIRPath at character {column + 1}: {msg}")


def _check_calls(node: dict[str, Any]) -> None:
    """Every function is one fhirpathpy implements, with a number of arguments it takes,
    and every %constant one we provide: otherwise the rule would fail on every message."""
    kind = node.get("type")
    if kind == "Functn":
        name_node, *rest = node.get("children") or [{}]
        name = name_node.get("text", "")
        count = len(rest[0].get("children") or []) if rest else 0
        entry = invocation_registry.get(name)
        if entry is None:
            raise FhirPathError(f"function {name}() is not supported by the FHIRPath "
                                "engine (fhirpathpy)")
        arities = sorted(entry.get("arity", {0: None})) if "variadic" not in entry else None
        if arities is not None and count not in arities:
            takes = " or ".join(map(str, arities))
            raise FhirPathError(f"function {name}() takes {takes} argument(s), got {count}")
    elif kind == "ExternalConstant":
        name = (node.get("children") or [{}])[0].get("text", "").strip("`'")
        if name not in _CONSTANTS:
            raise FhirPathError(f"unknown constant %{name}; available: "
                                f"{', '.join('%' + c for c in sorted(_CONSTANTS))}")
    for child in node.get("children") or []:
        _check_calls(child)


class Filter:
    """A channel's rules, in order; resource checks given as `first` run before them
    (the split step's "a Bundle with nothing to split" is one)."""

    def __init__(self, rules: list[FilterRule], first: Sequence[ResourceCheck] = ()) -> None:
        self.rules: list[Rule | ResourceCheck] = [*first]
        self.rules += [FhirPathRule(r.fhirpath) if r.fhirpath is not None else Rule(r)
                       for r in rules]
        self.slow = any(isinstance(r, FhirPathRule) for r in self.rules)

    def first_failed(self, read: FieldReader, resource: Any = None) -> str | None:
        """None when the message passes, else the text of the first rule it fails;
        `resource` is the parsed body that FHIRPath rules and resource checks read.
        Raises FilterError when a rule cannot be evaluated on this message."""
        for rule in self.rules:
            if isinstance(rule, Rule):
                if not rule.holds(read):
                    return rule.text
                continue
            reason = rule.failure(resource)
            if reason is not None:
                return reason
        return None


# Message size from which slow filter rules (path expressions) run off the event loop.
THREAD_FROM = 16 * 1024


class Filtering:
    """The filter step of a channel: its rules (and checks run before them, such as the
    splitter's) on a parsed message, reading fields through `field` (the codec's)."""

    def __init__(self, rules: list[FilterRule], field: Callable[[Parsed, str], str],
                 first: Sequence[ResourceCheck] = ()) -> None:
        self.filter = Filter(rules, first=first)
        self._field = field

    async def check(self, parsed: Parsed, size: int) -> str | FilterError | None:
        """The first rule the message fails, or the error of one that cannot be evaluated
        on it. Slow rules (path expressions) on a message of `size` bytes over THREAD_FROM
        run in a worker thread: their cost grows with the message (about a millisecond
        per kilobyte in a `where`), and a big one must not hold up every other channel;
        below it the hop would cost more than it saves."""
        def first_failed() -> str | FilterError | None:
            try:
                return self.filter.first_failed(lambda path: self._field(parsed, path),
                                                parsed.body)
            except FilterError as exc:
                return exc
        if self.filter.slow and size > THREAD_FROM:
            return await asyncio.to_thread(first_failed)
        return first_failed()
