"""Channel filters: rules on fields that decide whether a message is taken on.

A message must satisfy every rule; the first rule it fails is recorded as the reason
it was filtered, in words an analyst recognises from the channel file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engine.config.schema import FilterRule

FieldReader = Callable[[str], str]


class Rule:
    def __init__(self, rule: FilterRule) -> None:
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


class Filter:
    def __init__(self, rules: list[FilterRule]) -> None:
        self.rules = [Rule(r) for r in rules]

    def first_failed(self, read: FieldReader) -> str | None:
        """None when the message passes, else the text of the first rule it fails."""
        for rule in self.rules:
            if not rule.holds(read):
                return rule.text
        return None
