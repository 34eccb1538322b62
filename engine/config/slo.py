"""The `slo:` section of conf/conduit.yaml: the objectives and the window they are
measured over, validated when the configuration is loaded.

Config structs live with the config: `SloConfig` was declared in `engine/slo.py` (now
`engine/ops/slo.py`), which computes the objectives live and so imports the engine; the
schema importing it was one of the edges of an 18-module import loop through
`engine/config/schema.py`. Declarations and their checks only; `engine.ops.slo` builds on
this module, and the structs are imported from here, not from it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from engine.config.types import Duration

MAX_BUCKETS = 20_000


class ObjectiveBase(msgspec.Struct, tag_field="kind", forbid_unknown_fields=True,
                   kw_only=True, frozen=True):
    """What every objective has: a name, the channels it covers and a target."""

    name: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$",
                              description="names the objective on the page, in /metrics "
                              "and in slo_burn alert rules")]
    channel: Annotated[str, Meta(min_length=1, description='a channel name, a pattern such '
                                 'as "adt-*", or "*" for every channel')] = "*"
    target: Annotated[float, Meta(gt=0, lt=100, description="percent that must be good, "
                                  "such as 99.9")]


class DeliveryObjective(ObjectiveBase, tag="delivery", kw_only=True):
    """Messages delivered to every destination within `within` of their receipt."""

    within: Annotated[Duration, Meta(description="a delivery later than this is bad")]


class AvailabilityObjective(ObjectiveBase, tag="availability", kw_only=True):
    """The channel accepting traffic (started) for the target share of the time."""


Objective = DeliveryObjective | AvailabilityObjective


class SloConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """conf/conduit.yaml `slo:`; no objectives, nothing is computed."""

    window: Annotated[Duration, Meta(description="rolling window of the indicators and "
                                     "the error budget, such as 1h or 24h")] = Duration(86400)
    bucket: Annotated[Duration, Meta(description="resolution of the window (memory is "
                                     "window / bucket per channel and objective)")] = (
        Duration(60))
    interval: Annotated[Duration, Meta(description="how often channel states and queue "
                                       "ages are sampled")] = Duration(10)
    burn_windows: Annotated[tuple[Duration, ...], Meta(
        description="windows whose burn rates the page and /metrics show")] = (
        Duration(300), Duration(3600))
    objectives: Annotated[list[Objective], Meta(description="what to measure")] = []

    def __post_init__(self) -> None:
        if self.bucket < 1 or self.window < self.bucket:
            raise ValueError("slo.bucket must be at least 1s and at most slo.window")
        if self.window / self.bucket > MAX_BUCKETS:
            raise ValueError(f"slo.window / slo.bucket must be at most {MAX_BUCKETS}; "
                             "use a larger bucket")
        if self.interval <= 0:
            raise ValueError("slo.interval must be more than 0")
        names = [o.name for o in self.objectives]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"objective names must be unique: {', '.join(doubled)}")
