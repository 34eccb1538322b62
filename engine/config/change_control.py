"""`change_control:` in conf/conduit.yaml: whether a deployed revision of the channels and
mappings needs another admin's approval before it goes live (engine.change)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class ChangeControlConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    approvals: Annotated[int, Meta(
        ge=0, le=5,
        description="approvals by other admins a revision needs before it goes live; 0 "
                    "(the default) makes each deploy live at once and lets the engine "
                    "record changed files as a new revision when it starts")] = 0

    @property
    def enabled(self) -> bool:
        return self.approvals > 0
