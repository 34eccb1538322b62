"""Reading a config YAML file into plain Python data, keeping where each part was written.

This exists apart from the loader because msgspec (and PyYAML's own loading) forget
positions: we walk PyYAML's node tree to record the (line, col) of every value and key,
interpolate `${NAME}` / `${NAME:-default}`, and catch YAML errors and duplicate keys, so
the loader can convert the data to structs and still report `file:line:col` for each
problem. Optional destinations whose variables are unset are dropped here too, because
that is decided from the unset variables this module records.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from engine.errors import ConfigError

Path_ = tuple[str | int, ...]  # a field path: ("destinations", 1, "url")
Pos = tuple[int, int]  # 1-based line and column

ROOT: Pos = (1, 1)


# ------------------------------------------------------------------- YAML to plain data


_REF = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?\Z", re.DOTALL)


@dataclass
class Document:
    """One YAML file as plain data plus where each part of it was written."""

    file: str
    env: Mapping[str, str]
    text: str = ""
    data: Any = None
    values: dict[Path_, Pos] = field(default_factory=dict)
    keys: dict[Path_, Pos] = field(default_factory=dict)
    raw: dict[Path_, str] = field(default_factory=dict)  # spelling of non-text plain scalars
    env_used: dict[Path_, list[str]] = field(default_factory=dict)
    unset: dict[Path_, list[tuple[str, Pos]]] = field(default_factory=dict)
    skip: set[Path_] = field(default_factory=set)  # values already reported; not converted
    defaulted_name: bool = False
    errors: list[ConfigError] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path, env: Mapping[str, str], *, allow_empty: bool) -> Document:
        """Parse `path`; problems land in `errors` and leave `data` None."""
        doc = cls(str(path), env)
        try:
            doc.text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            doc.add(f"is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8")
            return doc
        except OSError as exc:
            doc.add(f"cannot be read: {exc.strerror or type(exc).__name__}")
            return doc
        doc.parse(allow_empty)
        return doc

    def parse(self, allow_empty: bool) -> None:
        loader = yaml.SafeLoader(self.text)
        try:
            node = loader.get_single_node()
            if node is None:
                if not allow_empty:
                    self.add("the file is empty; a channel needs at least `source:` and "
                             "`destinations:`")
                return
            data = _Builder(self, loader).build(node, ())
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)
            return
        except RecursionError:
            self.add("an alias (*name) refers to a value that contains it; aliases must not "
                     "loop")
            return
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            self.add(f"the top level must be settings written as `name: value`, got "
                     f"{describe(data)}", at=self.values.get((), ROOT))
            return
        self.data = data

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        lines = self.text.splitlines()
        line_text = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
        if "'\\t'" in (exc.problem or ""):
            message += "; indent with spaces, not tabs"
        elif "${" in line_text and "'{'" in (exc.problem or ""):
            message += "; inside [ ] or { } put a ${...} value in quotes"
        at = (mark.line + 1, mark.column + 1) if mark is not None else None
        self.add(message, at=at)

    def add(self, message: str, path: Path_ = (), at: Pos | None = None) -> None:
        """Record an error at `at`, or where `path` was written."""
        line, col = at if at is not None else self.pos(path)
        self.errors.append(ConfigError(message, file=self.file, line=line, col=col,
                                       path=render(path) or None))

    def pos(self, path: Path_) -> Pos:
        """Where the value at `path` (or its nearest written ancestor) starts."""
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, ROOT)

    def key_pos(self, path: Path_) -> Pos:
        """Where the key naming `path` is written; for list items, their first line."""
        return self.keys.get(path) or self.pos(path)

    def find(self, node: yaml.Node, needle: str) -> Pos:
        """Position of `needle` inside the source text of `node` (for `${VAR}`), which is
        more precise than the start of a long value."""
        start, end = node.start_mark, node.end_mark
        index = self.text.find(needle, start.index, max(end.index, start.index + len(needle)))
        if index < 0:
            return start.line + 1, start.column + 1
        line = start.line + 1 + self.text.count("\n", start.index, index)
        line_start = self.text.rfind("\n", 0, index) + 1
        return line, index - line_start + 1

    def interpolate(self, text: str, node: yaml.Node, path: Path_) -> str:
        """Replace ${NAME} and ${NAME:-default} (default when unset or empty); `$$` is a
        literal `$`. Unset names without a default are remembered, not yet reported,
        because an optional destination turns them into a log line instead."""
        if "$" not in text:
            return text
        parts: list[str] = []
        done = 0
        for m in _REF.finditer(text):
            parts.append(text[done:m.start()])
            done = m.end()
            if m[0] == "$$":
                parts.append("$")
                continue
            ref = _BODY.match(m["body"]) if m["body"] is not None else None
            if ref is None:
                self.add(_bad_reference(m[0]), path, at=self.find(node, m[0]))
                self.skip.add(path)
                parts.append(m[0])
                continue
            parts.append(self._lookup(ref["name"], ref["default"], node, path))
        parts.append(text[done:])
        return "".join(parts)

    def _lookup(self, name: str, default: str | None, node: yaml.Node, path: Path_) -> str:
        value = self.env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            self.unset.setdefault(path, []).append((name, self.find(node, "${" + name)))
            return ""
        self.env_used.setdefault(path, []).append(name)
        return value

    def report_unset(self) -> None:
        """Turn the remaining unset variables into errors at the `${` that names them."""
        for path, names in self.unset.items():
            self.skip.add(path)
            for name, at in names:
                self.add(f"environment variable {name} is not set (give it a value, or a "
                         f"default with ${{{name}:-value}})", path, at=at)
        self.unset.clear()

    def reindex(self, prefix: Path_, moves: dict[int, int]) -> None:
        """Renumber list items under `prefix` after some were removed (dropped if absent
        from `moves`), so positions keep matching the data."""
        n = len(prefix)

        def move(path: Path_) -> Path_ | None:
            if len(path) <= n or path[:n] != prefix or not isinstance(path[n], int):
                return path
            new = moves.get(path[n])
            return None if new is None else (*prefix, new, *path[n + 1:])

        for name in ("values", "keys", "raw", "env_used", "unset"):
            table = getattr(self, name)
            moved = {move(p): v for p, v in table.items()}
            moved.pop(None, None)
            setattr(self, name, moved)
        self.skip = {p for p in map(move, self.skip) if p is not None}


def _bad_reference(token: str) -> str:
    shown = "`${` is not closed" if token == "${" else f"cannot read `{token}`"
    return f"{shown}: write ${{NAME}} or ${{NAME:-default}}, and $$ for a literal $"


class _Builder:
    """Walks PyYAML nodes into dicts, lists and scalars, recording positions."""

    def __init__(self, doc: Document, loader: yaml.SafeLoader) -> None:
        self.doc = doc
        self.loader = loader

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.values[path] = _mark(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node)
        if isinstance(value, str):
            return self.doc.interpolate(value, node, path)
        if node.style is None and value is not None:
            self.doc.raw[path] = node.value  # `equals: 01` read as text where text is wanted
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        self._check_duplicates(node, path)
        self.loader.flatten_mapping(node)  # `<<: *anchor` merges; later keys win
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.add("a setting name must be plain text", path,
                             at=_mark(key_node.start_mark))
                continue
            key = key_node.value
            self.doc.keys[(*path, key)] = _mark(key_node.start_mark)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _check_duplicates(self, node: yaml.MappingNode, path: Path_) -> None:
        """PyYAML silently keeps the last of two equal keys; an analyst never means that."""
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                self.doc.add(f"`{key}` is given twice (first at line {seen[key]}); YAML would "
                             f"silently keep only the last one", (*path, key),
                             at=_mark(key_node.start_mark))
            else:
                seen[key] = line


def _mark(mark: yaml.Mark) -> Pos:
    return mark.line + 1, mark.column + 1


# ----------------------------------------------------------------- optional destinations


def disable_optional_destinations(
    doc: Document, check: Callable[[Any, Path_], Any]
) -> dict[str, list[str]]:
    """Drop destinations marked `optional: true` that use unset variables, and return
    them as name -> variables; error if that leaves the channel with no destination.

    Each is first given to `check` with only its unset values skipped, so a typo in a
    destination that is off here is reported now, not on the day production sets the
    variable."""
    dests = doc.data.get("destinations")
    if not isinstance(dests, list):
        return {}
    disabled: dict[str, list[str]] = {}
    keep: list[int] = []
    for i, dest in enumerate(dests):
        unset = {p: v for p, v in doc.unset.items() if p[:2] == ("destinations", i)}
        if not unset or not _is_optional(doc, dest, i):
            keep.append(i)
            continue
        name = dest.get("name")
        if not isinstance(name, str) or ("destinations", i, "name") in unset:
            name = f"destinations[{i}]"
        disabled[name] = sorted({var for found in unset.values() for var, _ in found})
        doc.skip.update(unset)
        check(dest, ("destinations", i))
        doc.skip.difference_update(unset)
        for path in unset:
            del doc.unset[path]
    if not disabled:
        return {}
    doc.data["destinations"] = [dests[i] for i in keep]
    doc.reindex(("destinations",), {old: new for new, old in enumerate(keep)})
    if not keep:
        listing = "; ".join(f"{n} ({', '.join(v)})" for n, v in disabled.items())
        doc.add(f"every destination is disabled because environment variables are unset: "
                f"{listing}; set them, or make a destination non-optional",
                ("destinations",), at=doc.key_pos(("destinations",)))
        doc.skip.add(("destinations",))
    return disabled


def _is_optional(doc: Document, dest: Any, i: int) -> bool:
    """`optional` read as msgspec will read it; an unset variable there means not optional
    (its own error is reported)."""
    if not isinstance(dest, dict) or ("destinations", i, "optional") in doc.unset:
        return False
    try:
        return msgspec.convert(dest.get("optional", False), bool, strict=False)
    except msgspec.ValidationError:
        return False


# ----------------------------------------------- values and paths as analysts read them


def describe(value: Any) -> str:
    """A config value as an analyst would recognise it in their file."""
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f'text "{shown}"' if shown else "empty text"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if value is None:
        return "an empty value"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "settings (`name: value`)"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    return type(value).__name__


def render(path: Path_) -> str:
    """("destinations", 0, "url") as analysts read it: destinations[0].url."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out

