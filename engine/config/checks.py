"""Checks that need more than one file at a time: clashing names and ports, mappings that
are not installed or read another format, filter rules that could never work, Bundle
splitting that could never happen, and listeners that would take PHI off the network in
clear.

Each file converts cleanly on its own before these run; what is left are problems only
visible across files (or against the mapping catalog), located in the channel file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from functools import cache

from engine import registry
from engine.config.loader import LoadedChannel
from engine.config.rules import FilterRule
from engine.config.schema import EngineConfig
from engine.connectors.tls import exposed
from engine.errors import ConfigError
from engine.mapping import MappingCatalog
from engine.pipeline.filters import FhirPathError, compile_fhirpath

_CONDITIONS = {"equals": "equals", "in_": "in", "not_in": "not_in", "matches": "matches",
               "present": "present"}


def check(
    engine: EngineConfig, channels: list[LoadedChannel], catalog: MappingCatalog
) -> list[ConfigError]:
    """Every cross-file problem, each located in the channel file that has to change."""
    errors = [*_duplicate_channel_names(channels), *_resource_clashes(engine, channels)]
    for channel in channels:
        errors += _cleartext_listener(channel)
        errors += _duplicate_destination_names(channel)
        errors += _mapping_problems(channel, catalog)
        errors += _conformance_problems(channel, catalog)
        errors += _filter_problems(channel)
        errors += _split_problems(channel)
    return errors


def _duplicate_channel_names(channels: list[LoadedChannel]) -> Iterator[ConfigError]:
    """Names identify channels in the status page, the API and the audit trail."""
    first: dict[str, LoadedChannel] = {}
    for channel in channels:
        name = channel.config.name or ""
        if name in first:
            yield channel.error(f"channel name `{name}` is already used by "
                                f"{first[name].file}; give each channel its own name", "name")
        else:
            first[name] = channel


def _resource_clashes(
    engine: EngineConfig, channels: list[LoadedChannel]
) -> Iterator[ConfigError]:
    """Two enabled sources on one port would fail only at start-up; catch it here."""
    web = f"tcp:{engine.web.port}" if engine.web.port else None
    owner: dict[str, LoadedChannel] = {}
    for channel in channels:
        if not channel.config.enabled:
            continue
        resources = getattr(channel.config.source, "resources", lambda: [])()
        for resource in resources:
            if resource == web:
                yield channel.error(
                    f"source binds {resource}, the port of the engine's web listener "
                    f"(web.port); use another port for one of them", "source.port")
            elif resource in owner:
                other = owner[resource]
                yield channel.error(
                    f"source binds {resource}, which channel `{other.config.name}` "
                    f"({other.file}) binds too; give each channel its own port", "source.port")
            else:
                owner[resource] = channel


def _cleartext_listener(channel: LoadedChannel) -> Iterator[ConfigError]:
    """A source that binds a network address (0.0.0.0 and :: included) must speak TLS, or
    say `insecure: true`: otherwise PHI and credentials cross the network in clear.
    Any source with `host` and `tls` settings is a listener (mllp, fhir)."""
    source = channel.config.source
    host = getattr(source, "host", None)
    if not channel.config.enabled or not isinstance(host, str) or not hasattr(source, "tls"):
        return
    if exposed(host, source.tls) and not getattr(source, "insecure", False):
        yield channel.error(
            f"source listens on {host or 'every interface'} without TLS, so messages and "
            "credentials would cross the network in clear; give it `tls:` (cert and key), "
            "bind 127.0.0.1, or set `insecure: true` to accept the risk (logged and shown "
            "on the status page)", "source.host")


def _duplicate_destination_names(channel: LoadedChannel) -> Iterator[ConfigError]:
    """A destination's name keys its queue; two with one name would share it."""
    seen: set[str] = set()
    for i, dest in enumerate(channel.config.destinations):
        if dest.name in seen:
            yield channel.error(f"destination name `{dest.name}` is used twice in this channel; "
                                "each destination needs its own name", f"destinations[{i}].name")
        seen.add(dest.name)


def _mapping_problems(channel: LoadedChannel, catalog: MappingCatalog) -> Iterator[ConfigError]:
    """A pinned (or shadow) mapping must be installed and must read this channel's format;
    a shadow needs a live mapping to be compared with, emitting the same kind of output."""
    cfg = channel.config
    for setting, ref in (("mapping", cfg.mapping), ("shadow", cfg.shadow)):
        if ref is None:
            continue
        found = catalog.get(ref)
        if found is None:
            yield channel.error(catalog.unknown(ref), setting)
        elif found.accepts != cfg.format:
            yield channel.error(f"mapping {ref} accepts {found.accepts} messages, but this "
                                f"channel's format is {cfg.format}", setting)
    answer = cfg.respond.mapping if cfg.respond is not None else None
    if answer is not None and catalog.get(answer) is None:  # it reads the answer's format
        yield channel.error(catalog.unknown(answer), "respond.mapping")
    if cfg.shadow is not None:
        live, candidate = catalog.get(cfg.mapping or ""), catalog.get(cfg.shadow)
        if cfg.mapping is None:
            yield channel.error("a shadow mapping is compared with the live one: set "
                                "mapping too", "shadow")
        elif live is not None and candidate is not None and live.emits != candidate.emits:
            yield channel.error(f"shadow {cfg.shadow} emits {candidate.emits} but the live "
                                f"mapping emits {live.emits}; they cannot be compared",
                                "shadow")


def _conformance_problems(channel: LoadedChannel, catalog: MappingCatalog
                          ) -> Iterator[ConfigError]:
    """A conformance gate checks the mapping's FHIR JSON output: a destination sent the
    message as received, or a channel whose mapping emits something else (or that maps
    nothing), would have every message held."""
    cfg = channel.config
    mapping = catalog.get(cfg.mapping) if cfg.mapping else None
    for i, dest in enumerate(cfg.destinations):
        if dest.conformance is None:
            continue
        where = f"destinations[{i}].conformance"
        if dest.send == "received":
            yield channel.error(f"destination `{dest.name}` is sent the message as received "
                                "(send: received); a conformance gate checks the mapping's "
                                "FHIR output: remove one of the two", where)
        elif cfg.mapping is None:
            yield channel.error(f"destination `{dest.name}` has a conformance gate, which "
                                "checks the mapping's FHIR output, but this channel has no "
                                "mapping", where)
        elif mapping is not None and mapping.emits != "application/fhir+json":
            yield channel.error(f"destination `{dest.name}` has a conformance gate, which "
                                f"checks FHIR JSON, but mapping {cfg.mapping} emits "
                                f"{mapping.emits}", where)


def _filter_problems(channel: LoadedChannel) -> Iterator[ConfigError]:
    for i, rule in enumerate(channel.config.filter):
        yield from _rule_problems(channel, rule, f"filter[{i}]")


def _rule_problems(channel: LoadedChannel, rule: FilterRule, path: str) -> Iterator[ConfigError]:
    """One condition per rule keeps each rule's meaning, and its 'filtered because'
    line, obvious; a FHIRPath rule is its own condition."""
    given = [word for attr, word in _CONDITIONS.items() if getattr(rule, attr) is not None]
    if rule.fhirpath is not None:
        yield from _fhirpath_problems(channel, rule, given, path)
        return
    if rule.field is None:
        yield channel.error("a filter rule needs `field:` with one condition, or "
                            "`fhirpath:` (FHIR channels)", path)
        return
    if not given:
        yield channel.error(f"filter rule on {rule.field} has no condition; give one of "
                            f"{', '.join(_CONDITIONS.values())}", path)
    elif len(given) > 1:
        yield channel.error(f"filter rule on {rule.field} has {len(given)} conditions "
                            f"({', '.join(given)}); write one rule per condition", path)
    if rule.matches is not None:
        try:
            re.compile(rule.matches)
        except re.error as exc:
            yield channel.error(f"invalid regular expression: {exc.msg} at position {exc.pos}",
                                f"{path}.matches")
    codec = registry.CODECS.get(channel.config.format)
    wrong = codec().field_path_error(rule.field) if codec is not None else None
    if wrong is not None:
        yield channel.error(wrong, f"{path}.field")


def _fhirpath_problems(channel: LoadedChannel, rule: FilterRule, given: list[str],
                       path: str) -> Iterator[ConfigError]:
    assert rule.fhirpath is not None
    if rule.field is not None:
        yield channel.error("a filter rule takes `field:` or `fhirpath:`, not both; write "
                            "two rules", path)
    elif given:
        yield channel.error(f"a fhirpath rule is its own condition; remove {', '.join(given)} "
                            "(write e.g. `fhirpath: Patient.gender = 'female'`)", path)
    if channel.config.format != "fhir":
        yield channel.error(f"fhirpath rules read FHIR resources, but this channel's format "
                            f"is {channel.config.format}", f"{path}.fhirpath")
        return
    try:
        compile_fhirpath(rule.fhirpath)
    except FhirPathError as exc:
        yield channel.error(f"invalid FHIRPath: {exc}", f"{path}.fhirpath")


def _split_problems(channel: LoadedChannel) -> Iterator[ConfigError]:
    """Splitting reads FHIR Bundles; the resource type must be one an entry can hold."""
    split = channel.config.split
    if split is None:
        return
    if channel.config.format != "fhir":
        yield channel.error(f"split takes FHIR Bundles apart, but this channel's format is "
                            f"{channel.config.format}", "split")
    elif split.resource != "*" and not _is_resource_type(split.resource):
        close = [c for c in difflib.get_close_matches(split.resource, _model_names(), n=5)
                 if _is_resource_type(c)]
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        yield channel.error(f"`{split.resource}` is not a FHIR R4 resource type{hint}; give "
                            "one such as Patient, or * for every entry", "split.resource")


@cache
def _is_resource_type(name: str) -> bool:
    """A resource type of the fhir.resources R4B models (the R4-compatible ones); not a
    data type or a backbone element such as BundleEntry."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        return issubclass(get_fhir_model_class(name), Resource)
    except ValueError:
        return False


@cache
def _model_names() -> list[str]:
    from fhir.resources.R4B import fhirtypes

    return [n.removesuffix("Type") for n in dir(fhirtypes) if n.endswith("Type")]
