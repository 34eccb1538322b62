"""A revision's channels as the engine runs them: loaded from the revision's stored text
with the same loader and checks as files on disk, beside the mapping catalog on disk,
whose pinned versions must still be the ones the revision hashed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.change.snapshot import Snapshot, mapping_hashes
from engine.config.checks import check
from engine.config.loader import LoadedChannel, load_channel_texts
from engine.config.schema import EngineConfig
from engine.errors import ConduitError, ConfigErrors
from engine.mapping import MappingCatalog


def stale_mappings(snapshot: Snapshot, mappings_dir: str | Path) -> list[str]:
    """Pinned mapping versions whose source on disk is not the one `snapshot` hashed."""
    now = mapping_hashes(Path(mappings_dir), snapshot.mappings)
    return [ref for ref, digest in sorted(snapshot.mappings.items()) if now[ref] != digest]


def load_snapshot(snapshot: Snapshot, config: EngineConfig, env: Mapping[str, str],
                  catalog: MappingCatalog | None = None
                  ) -> tuple[list[LoadedChannel], MappingCatalog]:
    """The channels of `snapshot` and the catalog they run with; raises ConfigErrors (the
    revision's files, named as in the channel folder) or ConduitError (a pinned mapping
    changed on disk since the revision was made)."""
    stale = stale_mappings(snapshot, config.mappings_dir)
    if stale:
        raise ConduitError(
            f"the mapping source on disk is not what the revision pinned: "
            f"{', '.join(stale)}; a mapping version must not change once deployed (add "
            f"a new version file instead), or deploy the change with `conduit deploy`")
    channels = load_channel_texts(config.channels_dir, snapshot.channels, env)
    if catalog is None:
        catalog = MappingCatalog.discover(config.mappings_dir)
    problems = check(config, channels, catalog)
    if problems:
        raise ConfigErrors(problems)
    return channels, catalog
