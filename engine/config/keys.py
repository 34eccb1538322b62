"""`keys:` in conf/conduit.yaml: where content keys come from, how fast a running engine
notices a rotation, and how the background re-encryption after one paces itself
(engine.security.key_providers, engine.store.rekey)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.config.types import Duration


class KeysConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    directory: Annotated[
        str | None, Meta(description="key files; default: keys/ in the data folder")
    ] = None
    provider: Annotated[
        Literal["file", "env", "kms"] | None,
        Meta(description="file: key files in `directory`; env: CONDUIT_KEY; kms: data keys "
                         "wrapped by a master key (the file-based KMS in `kms_directory`); "
                         "default: env when CONDUIT_KEY is set, else file"),
    ] = None
    kms_directory: Annotated[
        str | None, Meta(description="the file-based KMS's folder; default: kms/ in the "
                                     "data folder")
    ] = None
    poll: Annotated[
        Duration, Meta(description="how often each engine process looks for new keys")
    ] = Duration(5.0)
    activate_after: Annotated[
        Duration, Meta(description="a new key becomes current this long after it is made, "
                                   "so every process has loaded it first; at least 2 x poll")
    ] = Duration(15.0)
    reencrypt: Annotated[
        bool, Meta(description="re-seal content under older keys with the current one in "
                               "the background, then retire the old keys")
    ] = True
    reencrypt_every: Annotated[
        Duration, Meta(description="pause between rounds of re-encryption batches")
    ] = Duration(2.0)
    reencrypt_batch: Annotated[
        int, Meta(ge=1, le=10000, description="records re-sealed per transaction")
    ] = 200
    retire_after: Annotated[
        Duration, Meta(description="an old key is retired no sooner than this after its "
                                   "successor became current, and only with no record under it")
    ] = Duration(600.0)

    def __post_init__(self) -> None:
        if self.activate_after < 2 * self.poll:
            raise ValueError("keys.activate_after must be at least twice keys.poll, so every "
                             "process loads a new key before any writes with it")
