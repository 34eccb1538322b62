"""YAML files to config structs, with every problem reported at once as
`file:line:col: field.path: what is wrong`.

msgspec reports a path without a line and stops at the first error, while analysts need
the line and want to fix everything in one go. So `yaml_source` builds plain data from
PyYAML's node tree (which keeps positions), recording each value's line and column by
field path and interpolating `${ENV}` in scalars; then we convert field by field, recursing
through structs, lists and tagged unions, so each bad value is reported where it is
written; only when every part converts do we build the real object with one
`msgspec.convert`.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from engine.config.base import DestinationBase, SourceBase
from engine.config.schema import ChannelConfig, DestinationConfig, EngineConfig
from engine.config.types import dec_hook
from engine.config.yaml_source import (
    ROOT,
    Document,
    Path_,
    Pos,
    describe,
    disable_optional_destinations,
    render,
)
from engine.errors import ConfigError, ConfigErrors

__all__ = [
    "DEFAULT_ENGINE_CONFIG",
    "LoadedChannel",
    "load_all",
    "load_channel_texts",
    "load_channels",
    "load_engine_config",
]

DEFAULT_ENGINE_CONFIG = Path("conf/conduit.yaml")


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
        return self.positions.get("", ROOT)

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
    doc = Document.read(target, env, allow_empty=True)
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


def load_channel_texts(folder: str | Path, texts: Mapping[str, str],
                       env: Mapping[str, str]) -> list[LoadedChannel]:
    """Channels from file contents kept elsewhere (a deployed revision, engine.change):
    `texts` maps each file's name in `folder` to its text. Checked exactly as files on
    disk are, and named as if they were there; raises one ConfigErrors for all."""
    channels: list[LoadedChannel] = []
    errors: list[ConfigError] = []
    for name in sorted(texts):
        loaded, problems = _load_channel(Path(folder) / name, env, texts[name])
        errors += problems
        if loaded is not None:
            channels.append(loaded)
    if errors:
        raise ConfigErrors(errors)
    return channels


def _load_channel(path: Path, env: Mapping[str, str], text: str | None = None
                  ) -> tuple[LoadedChannel | None, list[ConfigError]]:
    """One channel file (or its `text`, kept elsewhere); optional destinations with unset
    variables are dropped first."""
    if text is None:
        doc = Document.read(path, env, allow_empty=False)
    else:
        doc = Document(str(path), env)
        doc.text = text
        doc.parse(allow_empty=False)
    if doc.data is None:
        return None, doc.errors
    if "name" not in doc.data:
        doc.data["name"] = path.stem
        doc.defaulted_name = True
    converter = _Converter(doc)
    disabled = disable_optional_destinations(
        doc, lambda dest, path: converter.convert(dest, DestinationConfig, path))
    doc.report_unset()
    config = converter.build(ChannelConfig)
    if config is None:
        return None, doc.errors
    positions = {render(p): pos for p, pos in doc.values.items()}
    return LoadedChannel(config, doc.file, disabled, positions), []


# --------------------------------------------------------------------------- conversion


class _Converter:
    """Converts one document field by field, so every bad value gets its own error."""

    def __init__(self, doc: Document) -> None:
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
        if path in self.doc.raw and (base is str or (origin is Literal and all(
                isinstance(a, str) for a in get_args(base)))):
            value = self.doc.raw[path]  # `validation: off` is the word, not YAML's false
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
        return describe(value)


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


def _parent(path: str) -> str:
    return _LAST_STEP.sub("", path)
