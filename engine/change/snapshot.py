"""What a revision holds: every channel file's text, and the content hash of each mapping
version the channels pin, read from disk; and the differences between two of them.

Channel files are configuration, not PHI, so their text is kept whole: the engine can run
a revision from the store without the files. Mapping versions are kept as hashes of their
source file: a new version is a new file (v2.py beside v1.py), so a hash is enough to see
that the version a revision pinned is still the one on disk.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.mapping_base import MAPPING_REF


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """Channel files by name (text) and pinned mapping versions by `name@version` (the
    sha256 of the version's source file, "" when it has none on disk)."""

    channels: dict[str, str]
    mappings: dict[str, str] = field(default_factory=dict)

    @property
    def channel_hashes(self) -> dict[str, str]:
        return {name: sha256(text) for name, text in sorted(self.channels.items())}

    @property
    def digest(self) -> str:
        """One hash of everything, to tell two revisions' content apart."""
        return sha256(json.dumps({"channels": self.channel_hashes,
                                  "mappings": dict(sorted(self.mappings.items()))},
                                 sort_keys=True))

    def to_json(self) -> str:
        return json.dumps({"channels": self.channels, "mappings": self.mappings},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        return cls(dict(data["channels"]), dict(data.get("mappings", {})))


def channel_name(file: str, text: str) -> str:
    """The channel a file defines: its `name:`, else the file's stem (as the loader)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else Path(file).stem


def channel_files(folder: Path) -> dict[str, str]:
    """Every channel file's text by name, as the loader picks them (*.yaml, *.yml)."""
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())
            if p.suffix in (".yaml", ".yml") and p.is_file()}


def pins_of(configs: Iterable[Any]) -> set[str]:
    """The mapping versions channel configs name: mapping, shadow and respond.mapping."""
    refs: set[str] = set()
    for cfg in configs:
        respond = getattr(cfg, "respond", None)
        for ref in (cfg.mapping, cfg.shadow, getattr(respond, "mapping", None)):
            if ref:
                refs.add(ref)
    return refs


def mapping_source(mappings_dir: Path, ref: str) -> Path | None:
    """The file `name@version` is loaded from (engine.mapping's layout), if there is one."""
    m = MAPPING_REF.match(ref)
    if m is None:
        return None
    for suffix in (".py", ".yaml"):
        path = mappings_dir / m["name"] / f"v{int(m['version'])}{suffix}"
        if path.is_file():
            return path
    return None


def mapping_hashes(mappings_dir: Path, refs: Iterable[str]) -> dict[str, str]:
    hashes = {}
    for ref in sorted(refs):
        path = mapping_source(mappings_dir, ref)
        hashes[ref] = sha256(path.read_bytes()) if path is not None else ""
    return hashes


def take(channels_dir: str | Path, mappings_dir: str | Path, configs: Iterable[Any]
         ) -> Snapshot:
    """The snapshot of the files on disk; `configs` are the loaded channels' configs
    (for the pins)."""
    return Snapshot(channel_files(Path(channels_dir)),
                    mapping_hashes(Path(mappings_dir), pins_of(configs)))


def differing(old: Snapshot, new: Snapshot, channels_dir: str = "channels",
              mappings_dir: str = "mappings") -> list[str]:
    """The files whose content differs between `old` and `new`, as paths to show."""
    old_h, new_h = old.channel_hashes, new.channel_hashes
    files = [f"{channels_dir}/{name}" for name in sorted(set(old_h) | set(new_h))
             if old_h.get(name) != new_h.get(name)]
    for ref in sorted(set(old.mappings) | set(new.mappings)):
        if ref in old.mappings and ref in new.mappings and old.mappings[ref] != new.mappings[ref]:
            m = MAPPING_REF.match(ref)
            files.append(f"{mappings_dir}/{m['name']}/v{m['version']}" if m else ref)
    return files


def diff(old: Snapshot | None, new: Snapshot, *, old_label: str = "live",
         new_label: str = "new") -> str:
    """A unified diff per channel file that changed, then the mapping pins that changed;
    "" when nothing did."""
    old = old or Snapshot({})
    out: list[str] = []
    for name in sorted(set(old.channels) | set(new.channels)):
        a, b = old.channels.get(name), new.channels.get(name)
        if a == b:
            continue
        out.extend(difflib.unified_diff(
            (a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
            fromfile=f"{old_label}/{name}" if a is not None else "/dev/null",
            tofile=f"{new_label}/{name}" if b is not None else "/dev/null"))
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    for ref in sorted(set(old.mappings) | set(new.mappings)):
        a, b = old.mappings.get(ref), new.mappings.get(ref)
        if a == b:
            continue
        if a is None:
            out.append(f"mapping {ref}: now pinned (source {_short(b)})\n")
        elif b is None:
            out.append(f"mapping {ref}: no longer pinned\n")
        else:
            out.append(f"mapping {ref}: source changed ({_short(a)} -> {_short(b)})\n")
    return "".join(out)


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "missing"
