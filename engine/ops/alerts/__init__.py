"""Alerts: rules over the engine's live state that fire once, repeat while they hold, and
clear when they stop holding.

Operations must hear about a backed-up queue, a failing or stopped channel, or an
interface that quietly stopped sending before clinicians notice. Each evaluation takes a
`Snapshot` (live stats, queue counts, channel states, service-level burn rates) and
`evaluate` turns it into `Reading`s without any I/O or clock of its own, so every rule is
testable with a fake clock. `Tracker` turns readings into fired / repeated / cleared
`Notification`s; `Alerting` runs both every few seconds and sends each notification to
the log, the audit trail (an ALERT event: rule, state, subject, value and threshold;
names and numbers only, never PHI), the status page (`active()`) and a webhook.

The package, one job per module: `hours` (when a silence rule's hours are open),
`rules` (snapshot in, readings out), `tracker` (fire, repeat, clear), `notify` (log,
audit trail, webhook), `told` (what the on-call was told, reconciled by a process that
starts speaking for the cluster) and `runner` (the engine-facing loop). The `alerts:`
section (the rule kinds, `AlertsConfig`, `WebhookConfig`) is declared with the rest of
the configuration, in `engine.config.alerts`, and imported from there only; this
package's own parts are gathered here, so import them from `engine.ops.alerts`.
"""

from engine.ops.alerts.hours import DAYS, Day, active_since, span
from engine.ops.alerts.notify import OUTBOX_LIMIT, Notifier, Webhook
from engine.ops.alerts.rules import (
    BurnView,
    ChannelView,
    QueueView,
    Reading,
    Snapshot,
    evaluate,
)
from engine.ops.alerts.runner import Alerting, collect
from engine.ops.alerts.told import Told, reconcile
from engine.ops.alerts.tracker import Active, Notification, State, Tracker, human

__all__ = [
    "DAYS",
    "OUTBOX_LIMIT",
    "Active",
    "Alerting",
    "BurnView",
    "ChannelView",
    "Day",
    "Notification",
    "Notifier",
    "QueueView",
    "Reading",
    "Snapshot",
    "State",
    "Told",
    "Tracker",
    "Webhook",
    "active_since",
    "collect",
    "evaluate",
    "human",
    "reconcile",
    "span",
]
