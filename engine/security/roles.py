"""Roles and what each may do. Every API route names the one permission it needs.

    viewer    status, queues, metrics, message metadata (never content)
    operator  viewer + start/stop/pause/resume channels, retry or discard dead letters
    analyst   viewer + message content (with a stated reason), reprocess, patient search
    auditor   viewer + audit trail read, verify and export, patient search
    admin     everything, and users, and approving deployed revisions (engine.change)
    integration  a sending system: may submit messages to a channel's HTTP/FHIR source,
              and nothing else (no status, no content)
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    VIEW_STATUS = "view-status"
    VIEW_METRICS = "view-metrics"
    CONTROL_CHANNELS = "control-channels"
    MANAGE_QUEUES = "manage-queues"
    VIEW_CONTENT = "view-content"
    REPROCESS = "reprocess"
    SEARCH_PATIENT = "search-patient"
    READ_AUDIT = "read-audit"
    MANAGE_USERS = "manage-users"
    SUBMIT = "submit-messages"
    APPROVE_REVISIONS = "approve-revisions"  # admin only: a deployed revision goes live


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    ADMIN = "admin"
    INTEGRATION = "integration"


_VIEW = {Permission.VIEW_STATUS, Permission.VIEW_METRICS}

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_VIEW),
    Role.OPERATOR: frozenset(_VIEW | {Permission.CONTROL_CHANNELS, Permission.MANAGE_QUEUES}),
    Role.ANALYST: frozenset(_VIEW | {Permission.VIEW_CONTENT, Permission.REPROCESS,
                                     Permission.SEARCH_PATIENT}),
    Role.AUDITOR: frozenset(_VIEW | {Permission.READ_AUDIT, Permission.SEARCH_PATIENT}),
    Role.ADMIN: frozenset(Permission),
    Role.INTEGRATION: frozenset({Permission.SUBMIT}),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in GRANTS[role]
