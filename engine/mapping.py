"""Versioned mapping plugins: the `@mapping` declaration, discovery and pinning.

A mapping is a pure function from a codec's parsed message to an output, registered as
`name@version` from `mappings/<name>/v<version>.py`. Several versions live side by side
so a channel can pin one and move to the next with evidence. The declaration must agree
with the file's place: a v1.py copied to v2.py without bumping its declaration is caught
here instead of silently replacing version 1.

A version may instead be declarative, `mappings/<name>/v<version>.yaml` (see
`engine/declarative`); it is registered the same way, and one version is either Python or
YAML, never both.

What a mapping is (`Mapping`, `Skip`, the `name@version` form) lives in
`engine.mapping_base`: the declarative loader builds on it, and this module loads
declarative files, so one module holding both closed an import loop.

This module is the public API for mapping plugins: a file under mappings/ writes
`from engine.mapping import mapping, Skip`, and analysts (and tests written like their
plugins) rely on it, so `Mapping`, `Skip` and `MAPPING_REF` are re-exported here on
purpose and stay. Code inside engine/ imports them from `engine.mapping_base`, their one
home.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path

from engine.errors import ConfigError
from engine.mapping_base import MAPPING_REF, Mapping, Skip

__all__ = ["MAPPING_REF", "Mapping", "MappingCatalog", "Skip", "mapping"]

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_FILE = re.compile(r"v(\d+)\.(py|yaml|yml)\Z")


_declared: list[Mapping] = []


def mapping(ref: str, *, accepts: str, emits: str) -> Callable[[Callable], Callable]:
    """Declare a mapping function as `name@version`."""
    m = MAPPING_REF.match(ref)
    if m is None:
        raise ValueError(f"mapping reference {ref!r} must look like name@1")

    def register(func: Callable) -> Callable:
        _declared.append(
            Mapping(m["name"], int(m["version"]), accepts, emits, func, func.__code__.co_filename)
        )
        return func

    return register


class MappingCatalog:
    """Every mapping found under a folder, by `name@version`."""

    def __init__(self, mappings: dict[str, Mapping]) -> None:
        self._mappings = mappings

    @classmethod
    def discover(cls, folder: str | Path) -> MappingCatalog:
        """Load every `<name>/v<N>.py` and `<name>/v<N>.yaml` under `folder`; raises
        ConfigError naming the file for a mapping that fails to import, is declared under
        the wrong name, or whose version is given twice (v1.py beside v1.yaml), and
        ConfigErrors listing every mistake in a declarative file."""
        folder = Path(folder)
        files: dict[str, Path] = {}
        for path in sorted(folder.glob("*/v*.*")) if folder.is_dir() else []:
            fm = _FILE.match(path.name)
            name = path.parent.name
            if fm is None or not _NAME.match(name) or not path.is_file():
                continue
            expected = f"{name}@{int(fm[1])}"
            if fm[2] == "yml":
                raise ConfigError(f"rename it v{int(fm[1])}.yaml: declarative mappings are "
                                  "read from .yaml files", file=str(path))
            if expected in files:
                raise ConfigError(
                    f"{files[expected]} and {path} both declare {expected}; a version is "
                    "either Python or YAML: keep one of them",
                    file=str(path),
                )
            files[expected] = path
        return cls({
            ref: _load_yaml(path, ref) if path.suffix == ".yaml" else _load_python(path, ref)
            for ref, path in files.items()
        })

    def get(self, ref: str) -> Mapping | None:
        return self._mappings.get(ref)

    def refs(self) -> list[str]:
        return sorted(self._mappings)

    def versions(self, name: str) -> list[int]:
        return sorted(m.version for m in self._mappings.values() if m.name == name)

    def unknown(self, ref: str) -> str:
        """What to tell someone who asked for `ref`, which is not here: the versions of
        that mapping when it has some (a list of every mapping is long: it hid the
        status page's buttons), else every mapping."""
        name = ref.partition("@")[0]
        versions = self.versions(name)
        if versions:
            listed = ", ".join([f"{name}@{versions[0]}", *(f"@{v}" for v in versions[1:])])
            return f"unknown mapping {ref}; available: {listed}"
        refs = self.refs()
        available = ", ".join(refs) if refs else "none (check mappings_dir)"
        return f"no mapping called {name}; available: {available}"


def _load_python(path: Path, expected: str) -> Mapping:
    declared = _load(path)
    if len(declared) != 1 or declared[0].ref != expected:
        got = ", ".join(d.ref for d in declared) or "nothing"
        raise ConfigError(
            f"declares {got}; a file at this place must declare exactly "
            f"@mapping(\"{expected}\", ...)",
            file=str(path),
        )
    return declared[0]


def _load_yaml(path: Path, expected: str) -> Mapping:
    # Imported here, so a Python mapping's `from engine.mapping import mapping` does not
    # load the declarative language; engine.declarative builds on engine.mapping_base.
    from engine.declarative import load

    return load(path, expected)


def _load(path: Path) -> list[Mapping]:
    module_name = "conduit_mappings." + path.parent.name.replace("-", "_") + "." + path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError("cannot be imported as a Python module", file=str(path))
    module = importlib.util.module_from_spec(spec)
    start = len(_declared)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ConfigError(
            f"failed to import: {type(exc).__name__}: {exc}", file=str(path)
        ) from exc
    declared = _declared[start:]
    del _declared[start:]
    return declared
