"""YAML files to config structs, with every problem reported at once as
`file:line:col: field.path: what is wrong`.

msgspec reports a path without a line and stops at the first error, while analysts need
the line and want to fix everything in one go. So we build plain data from PyYAML's node
tree (which keeps positions), recording each value's line and column by field path and
interpolating `${ENV}` in scalars; then we convert field by field, recursing through
structs, lists and tagged unions, so each bad value is reported where it is written;
only when every part converts do we build the real object with one `msgspec.convert`.
"""

from __future__ import annotations

import datetime
import difflib
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import yaml

from engine.config.base import DestinationBase, SourceBase
from engine.config.schema import ChannelConfig, EngineConfig
from engine.config.types import dec_hook
from engine.errors import ConfigError, ConfigErrors

__all__ = [
    "DEFAULT_ENGINE_CONFIG",
    "LoadedChannel",
    "load_all",
    "load_channels",
    "load_engine_config",
]

DEFAULT_ENGINE_CONFIG = Path("conf/conduit.yaml")

Path_ = tuple[str | int, ...]  # a field path: ("destinations", 1, "url")
Pos = tuple[int, int]  # 1-based line and column

_ROOT: Pos = (1, 1)


# --------------------------------------------------------------------------- public API


@dataclass
class LoadedChannel:
    """A channel as loaded from its file, with what runtime and checks need to point at
    the file: `locate("destinations[0].url")` gives the (line, col) a path was written at."""

    config: ChannelConfig
    file: str
    disabled: dict[str, list[str]] = field(default_factory=dict)
    positions: dict[str, Pos] = field(default_factory=dict)

    def locate(self, path: str) -> Pos:
        """Line and column of `path`, or of its nearest written ancestor (a defaulted
        setting has no line of its own, so we point at what contains it)."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = _parent(path)
        return self.positions.get("", _ROOT)

    def error(self, message: str, path: str) -> ConfigError:
        """A ConfigError at `path` in this channel's file."""
        line, col = self.locate(path)
        return ConfigError(message, file=self.file, line=line, col=col, path=path or None)


def load_engine_config(path: str | Path | None, env: Mapping[str, str]) -> EngineConfig:
    """conf/conduit.yaml as an EngineConfig; defaults when no file is given or the default
    file is absent, but an error when a file named on purpose is missing."""
    config, errors, _ = _load_engine(path, env)
    if errors:
        raise ConfigErrors(errors)
    return config


def load_channels(folder: str | Path, env: Mapping[str, str]) -> list[LoadedChannel]:
    """Every channels/*.yaml (and *.yml) in name order; raises one ConfigErrors for all."""
    channels, errors = _load_channels(Path(folder), env)
    if errors:
        raise ConfigErrors(errors)
    return channels


def load_all(
    conf_path: str | Path | None, env: Mapping[str, str]
) -> tuple[EngineConfig, list[LoadedChannel]]:
    """The engine settings and every channel, or one ConfigErrors listing every problem
    in every file. Relative `channels_dir` is taken from the directory we run in."""
    engine, errors, data = _load_engine(conf_path, env)
    folder = engine.channels_dir
    if errors and isinstance(data, dict) and isinstance(data.get("channels_dir"), str):
        folder = data["channels_dir"]  # engine file is broken elsewhere; still check channels
    channels, channel_errors = _load_channels(Path(folder), env)
    errors += channel_errors
    if errors:
        raise ConfigErrors(errors)
    return engine, channels


def _load_engine(
    path: str | Path | None, env: Mapping[str, str]
) -> tuple[EngineConfig, list[ConfigError], Any]:
    """EngineConfig (defaults when broken), the errors, and the raw data for fallbacks."""
    target = Path(path) if path is not None else DEFAULT_ENGINE_CONFIG
    if not target.exists():
        if target == DEFAULT_ENGINE_CONFIG:
            return EngineConfig(), [], None
        return EngineConfig(), [ConfigError(
            "engine configuration file not found; check the path given with --conf or "
            "CONDUIT_CONF", file=str(target))], None
    doc = _Document.read(target, env, allow_empty=True)
    if doc.data is None and not doc.errors:
        return EngineConfig(), [], None  # only comments: every setting at its default
    doc.report_unset()
    config = _Converter(doc).build(EngineConfig)
    return config or EngineConfig(), doc.errors, doc.data


def _load_channels(
    folder: Path, env: Mapping[str, str]
) -> tuple[list[LoadedChannel], list[ConfigError]]:
    if not folder.is_dir():
        return [], [ConfigError(
            "channel folder does not exist; create it or set channels_dir in the engine "
            "configuration", file=str(folder))]
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    channels: list[LoadedChannel] = []
    errors: list[ConfigError] = []
    for file in files:
        loaded, problems = _load_channel(file, env)
        errors += problems
        if loaded is not None:
            channels.append(loaded)
    return channels, errors


def _load_channel(path: Path, env: Mapping[str, str]) -> tuple[LoadedChannel | None,
                                                                  list[ConfigError]]:
    """One channel file; optional destinations with unset variables are dropped first."""
    doc = _Document.read(path, env, allow_empty=False)
    if doc.data is None:
        return None, doc.errors
    if "name" not in doc.data:
        doc.data["name"] = path.stem
        doc.defaulted_name = True
    disabled = _disable_optional_destinations(doc)
    doc.report_unset()
    config = _Converter(doc).build(ChannelConfig)
    if config is None:
        return None, doc.errors
    positions = {_render(p): pos for p, pos in doc.values.items()}
    return LoadedChannel(config, doc.file, disabled, positions), []


# ------------------------------------------------------------------- YAML to plain data


_REF = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?\Z", re.DOTALL)


@dataclass
class _Document:
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
    def read(cls, path: Path, env: Mapping[str, str], *, allow_empty: bool) -> _Document:
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
                     f"{_describe(data)}", at=self.values.get((), _ROOT))
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
                                       path=_render(path) or None))

    def pos(self, path: Path_) -> Pos:
        """Where the value at `path` (or its nearest written ancestor) starts."""
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, _ROOT)

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

    def __init__(self, doc: _Document, loader: yaml.SafeLoader) -> None:
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


def _disable_optional_destinations(doc: _Document) -> dict[str, list[str]]:
    """Drop destinations marked `optional: true` that use unset variables, and return
    them as name -> variables; error if that leaves the channel with no destination."""
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


def _is_optional(doc: _Document, dest: Any, i: int) -> bool:
    """`optional` read as msgspec will read it; an unset variable there means not optional
    (its own error is reported)."""
    if not isinstance(dest, dict) or ("destinations", i, "optional") in doc.unset:
        return False
    try:
        return msgspec.convert(dest.get("optional", False), bool, strict=False)
    except msgspec.ValidationError:
        return False


# --------------------------------------------------------------------------- conversion


class _Converter:
    """Converts one document field by field, so every bad value gets its own error."""

    def __init__(self, doc: _Document) -> None:
        self.doc = doc
        self.descriptions: dict[Path_, str] = {}

    def build(self, struct: type) -> Any:
        """The struct, or None when the document has errors (all of them recorded)."""
        cleaned = self.convert(self.doc.data, struct, ())
        if self.doc.errors:
            return None
        try:
            return msgspec.convert(cleaned, struct, dec_hook=dec_hook, strict=False)
        except msgspec.ValidationError as exc:  # a rule only the whole can check
            self.report(str(exc), cleaned, struct, ())
            return None

    def convert(self, value: Any, tp: Any, path: Path_) -> Any:
        """Check `value` against `tp`, recording errors; returns the data to build from."""
        if path in self.doc.skip:
            return value
        base = _strip(tp)
        if _is_union(base):
            return self._union(value, tp, base, path)
        if _is_struct(base):
            if base.__struct_config__.tag_field:
                return self._tagged(value, [base], path)
            return self._struct(value, base, path)
        origin = get_origin(base)
        before = len(self.doc.errors)
        if origin is list and isinstance(value, list):
            item = (get_args(base) or (Any,))[0]
            items = [self.convert(v, item, (*path, i)) for i, v in enumerate(value)]
            return self._whole(items, tp, path, before)
        if origin is dict and isinstance(value, dict):
            item = (get_args(base) or (Any, Any))[-1]
            values = {k: self.convert(v, item, (*path, k)) for k, v in value.items()}
            return self._whole(values, tp, path, before)
        if base is str and path in self.doc.raw:
            value = self.doc.raw[path]
        return self._leaf(value, tp, path)

    def _union(self, value: Any, tp: Any, base: Any, path: Path_) -> Any:
        options = [a for a in get_args(base) if a is not type(None)]
        if value is None and len(options) < len(get_args(base)):
            return None
        structs = [_strip(a) for a in options if _is_struct(_strip(a))]
        if structs and len(structs) == len(options):
            if structs[0].__struct_config__.tag_field:
                return self._tagged(value, structs, path)
            if len(structs) == 1:
                return self._struct(value, structs[0], path)
        if len(options) == 1:
            return self.convert(value, options[0], path)
        return self._leaf(value, tp, path)

    def _tagged(self, value: Any, members: list[type], path: Path_) -> Any:
        """Pick the member by its `type:` tag, then check that member's settings."""
        if not isinstance(value, dict):
            self.doc.add(f"expected settings written as `name: value`, got "
                         f"{self._got(value, path)}", path)
            return value
        tag_field = members[0].__struct_config__.tag_field
        by_tag = {m.__struct_config__.tag: m for m in members}
        kind = _kind(members)
        known = f"known {kind}types: {', '.join(sorted(by_tag))}"
        if tag_field not in value:
            self.doc.add(f"missing required setting `{tag_field}`; {known}", path,
                         at=self.doc.key_pos(path))
            return value
        tag = value[tag_field]
        if (*path, tag_field) in self.doc.skip:
            return value  # its unset variable is already reported
        if not isinstance(tag, str) or tag not in by_tag:
            self.doc.add(f"unknown type `{tag}`; {known}", (*path, tag_field))
            return value
        return self._struct(value, by_tag[tag], path)

    def _struct(self, value: Any, struct: type, path: Path_) -> Any:
        if not isinstance(value, dict):
            self.doc.add(f"expected settings written as `name: value`, got "
                         f"{self._got(value, path)}", path)
            return value
        config = struct.__struct_config__
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        out: dict[str, Any] = {}
        for key, item in value.items():
            spec = fields.get(key)
            if key == config.tag_field or (spec is None and not config.forbid_unknown_fields):
                out[key] = item
            elif spec is None:
                self._unknown(key, [*fields, *filter(None, [config.tag_field])], path)
            else:
                sub = (*path, key)
                self.descriptions[sub] = _description(spec.type)
                out[key] = self.convert(item, spec.type, sub)
        for name, spec in fields.items():
            if spec.required and name not in value:
                about = _description(spec.type)
                self.doc.add(f"missing required setting `{name}`" + (f" ({about})" if about
                             else ""), path, at=self.doc.key_pos(path))
        return out

    def _unknown(self, key: str, known: list[str], path: Path_) -> None:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean `{close[0]}`?)" if close else (
            f"; known settings here: {', '.join(sorted(known))}")
        self.doc.add(f"unknown setting `{key}`{hint}", (*path, key),
                     at=self.doc.key_pos((*path, key)))

    def _whole(self, value: Any, tp: Any, path: Path_, before: int) -> Any:
        """After the parts, check rules on the container itself (such as min_length),
        unless a part failed or still waits on an unset variable."""
        depth = len(path)
        waiting = any(p[:depth] == path for p in self.doc.skip)
        if len(self.doc.errors) == before and not waiting:
            self._leaf(value, tp, path)
        return value

    def _leaf(self, value: Any, tp: Any, path: Path_) -> Any:
        try:
            msgspec.convert(value, tp, dec_hook=dec_hook, strict=False)
        except msgspec.ValidationError as exc:
            self.report(str(exc), value, tp, path)
        return value

    def report(self, text: str, value: Any, tp: Any, path: Path_) -> None:
        """Record msgspec's complaint `text` about `value` (at `path`) in plain words."""
        message, rel = _split_msgspec(text)
        here = (*path, *rel)
        value = _navigate(value, rel)
        found = _REQUIRED.match(message) or _UNKNOWN.match(message)
        if found:
            at = (*here, found[2]) if found[1] == "contains unknown" else here
            word = "unknown" if found[1] == "contains unknown" else "missing required"
            self.doc.add(f"{word} setting `{found[2]}`", at, at=self.doc.key_pos(at))
            return
        text = self._explain(message, value, tp, here)
        if here == ("name",) and self.doc.defaulted_name:
            text += " (the name comes from the file name; rename the file or set `name:`)"
        self.doc.add(text, here)

    def _explain(self, message: str, value: Any, tp: Any, path: Path_) -> str:
        got = self._got(value, path)
        about = self.descriptions.get(path, "")
        suffix = f" ({about})" if about else ""
        if m := _TYPE.match(message):
            suffix = "" if m[1] == "bool" else suffix
            return f"expected {_words(m[1])}, got {got}{suffix}"
        if m := _BOUND.match(message):
            return f"expected {_words(m[1])} {_NUMBER_BOUNDS[m[2]]} {m[3]}, got {got}"
        if m := _LENGTH.match(message):
            unit = ("entr" + ("y" if m[3] == "1" else "ies")) if m[1] == "array" else (
                "character" + ("" if m[3] == "1" else "s"))
            return f"expected {_words(m[1])} with {_BOUND_WORDS[m[2]]} {m[3]} {unit}, got {got}"
        if message.startswith("Expected `str` matching regex"):
            pattern = _pattern(tp)
            what = _PATTERN_WORDS.get(pattern, f"text matching the pattern {pattern}")
            return f"expected {what}, got {got}{suffix if pattern not in _PATTERN_WORDS else ''}"
        if _INVALID.match(message) and (choices := _literal_choices(tp)):
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            return f"expected one of {', '.join(map(str, choices))}, got {got}{hint}"
        # our own value types (Duration, ByteSize) raise messages already in plain words
        plain = re.sub(r",? got .*\Z", "", message, flags=re.DOTALL)
        plain = plain[:1].lower() + plain[1:]
        return f"{plain}, got {got}" if plain.startswith("expected") else plain

    def _got(self, value: Any, path: Path_) -> str:
        """The offending value as the analyst wrote it; a value that came from the
        environment is named by its variable, never shown (it may be a secret)."""
        names = self.doc.env_used.get(path)
        if names and isinstance(value, str):
            what = "an empty value" if value == "" else "the value"
            plural = "s" if len(names) > 1 else ""
            return f"{what} set through environment variable{plural} {', '.join(names)}"
        return _describe(value)


_TYPE = re.compile(r"Expected `([^`]+)`, got `[^`]+`\Z")
_BOUND = re.compile(r"Expected `([^`]+)` (>=|<=|>|<) (\S+)\Z")
_LENGTH = re.compile(r"Expected `([^`]+)` of length (>=|<=) (\d+)\Z")
_INVALID = re.compile(r"Invalid (?:enum )?value ")
_REQUIRED = re.compile(r"Object (missing required) field `([^`]+)`\Z")
_UNKNOWN = re.compile(r"Object (contains unknown) field `([^`]+)`\Z")
_BOUND_WORDS = {">=": "at least", "<=": "at most"}
_NUMBER_BOUNDS = {">=": "of at least", "<=": "of at most", ">": "greater than", "<": "less than"}
_TYPE_WORDS = {
    "int": "a whole number", "float": "a number", "str": "text", "bool": "true or false",
    "object": "settings written as `name: value`", "array": "a list", "null": "nothing",
}
_PATTERN_WORDS = {
    "^https?://": "an http:// or https:// URL",
    "^[a-z0-9][a-z0-9_-]*$": "a name of lowercase letters, digits, - and _",
    r"^[a-z0-9][a-z0-9-]*@\d+$": "a mapping pinned as name@version, such as adt-to-fhir@1",
}


def _words(names: str) -> str:
    """msgspec's `int | null` as `a whole number`."""
    parts = [p for p in names.split(" | ") if p != "null"] or ["null"]
    return " or ".join(_TYPE_WORDS.get(p, p) for p in parts)


def _describe(value: Any) -> str:
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


# ------------------------------------------------------------------ type introspection


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _metas(tp: Any) -> Iterable[msgspec.Meta]:
    """Every msgspec.Meta on `tp`, outermost first, looking through Optional."""
    if get_origin(tp) is Annotated:
        yield from (m for m in tp.__metadata__ if isinstance(m, msgspec.Meta))
        yield from _metas(get_args(tp)[0])
    elif _is_union(tp):
        for arg in get_args(tp):
            yield from _metas(arg)


def _description(tp: Any) -> str:
    return next((m.description for m in _metas(tp) if m.description), "")


def _pattern(tp: Any) -> str:
    return next((m.pattern for m in _metas(tp) if m.pattern), "")


def _literal_choices(tp: Any) -> list[Any]:
    base = _strip(tp)
    if get_origin(base) is Literal:
        return list(get_args(base))
    if _is_union(base):
        return [c for arg in get_args(base) for c in _literal_choices(arg)]
    return []


def _kind(members: list[type]) -> str:
    """`source ` or `destination `, for messages about a tagged union."""
    if all(issubclass(m, SourceBase) for m in members):
        return "source "
    if all(issubclass(m, DestinationBase) for m in members):
        return "destination "
    return ""


# ------------------------------------------------------------------------------- paths

_AT = re.compile(r"\A(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?\Z", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_LAST_STEP = re.compile(r"(?:\.[^.\[]+|\[\d+\]|^[^.\[]+)\Z")


def _split_msgspec(text: str) -> tuple[str, Path_]:
    """msgspec's "message - at `$.a[0].b`" as the message and ("a", 0, "b")."""
    m = _AT.match(text)
    assert m is not None
    steps: list[str | int] = []
    for name, index in _STEP.findall(m["path"] or ""):
        if index == "...":
            break  # a dict key msgspec does not name; stop at the dict
        steps.append(int(index) if index else name)
    return m["message"], tuple(steps)


def _navigate(value: Any, path: Path_) -> Any:
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _render(path: Path_) -> str:
    """("destinations", 0, "url") as analysts read it: destinations[0].url."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _parent(path: str) -> str:
    return _LAST_STEP.sub("", path)
