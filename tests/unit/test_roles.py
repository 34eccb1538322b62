"""Roles: the grants table is the one the README and the issue document, and every route
of the web app declares the one permission it needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.security.roles import GRANTS, Permission, Role, allows
from engine.web.app import build_app
from engine.web.auth import PUBLIC, SIGNED_IN

P = Permission
VIEW = {P.VIEW_STATUS, P.VIEW_METRICS}

# viewer (status and metrics only), operator (start, stop, pause, retry; no content),
# analyst (content, reprocess), auditor (audit trail read, verify, export), admin (all),
# integration (a sending system: submits to HTTP/FHIR sources, sees nothing).
DOCUMENTED = {
    Role.VIEWER: VIEW,
    Role.OPERATOR: VIEW | {P.CONTROL_CHANNELS, P.MANAGE_QUEUES},
    Role.ANALYST: VIEW | {P.VIEW_CONTENT, P.REPROCESS, P.SEARCH_PATIENT},
    Role.AUDITOR: VIEW | {P.READ_AUDIT, P.SEARCH_PATIENT},
    Role.ADMIN: set(Permission),
    Role.INTEGRATION: {P.SUBMIT},
}


def test_grants_match_the_documented_roles():
    assert set(GRANTS) == set(Role)
    assert {role: set(perms) for role, perms in GRANTS.items()} == DOCUMENTED


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_allows_reads_the_table(role, permission):
    assert allows(role, permission) is (permission in DOCUMENTED[role])


def test_content_and_users_are_never_granted_by_accident():
    assert {r for r in Role if allows(r, P.VIEW_CONTENT)} == {Role.ANALYST, Role.ADMIN}
    assert {r for r in Role if allows(r, P.MANAGE_USERS)} == {Role.ADMIN}
    assert {r for r in Role if allows(r, P.APPROVE_REVISIONS)} == {Role.ADMIN}
    assert {r for r in Role if allows(r, P.READ_AUDIT)} == {Role.AUDITOR, Role.ADMIN}
    people = [r for r in Role if r is not Role.INTEGRATION]
    assert all(allows(r, P.VIEW_STATUS) and allows(r, P.VIEW_METRICS) for r in people)
    assert {r for r in Role if allows(r, P.SUBMIT)} == {Role.INTEGRATION, Role.ADMIN}


def test_role_names_are_the_cli_choices():
    assert [r.value for r in Role] == ["viewer", "operator", "analyst", "auditor", "admin",
                                       "integration"]


ROUTES = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/metrics"): P.VIEW_METRICS,
    ("POST", "/api/session"): PUBLIC,
    ("GET", "/api/session"): SIGNED_IN,
    ("DELETE", "/api/session"): SIGNED_IN,
    ("GET", "/api/channels"): P.VIEW_STATUS,
    ("GET", "/api/channels/{name}"): P.VIEW_STATUS,
    ("POST", "/api/channels/{name}/{action}"): P.CONTROL_CHANNELS,
    ("GET", "/api/queues"): P.VIEW_STATUS,
    ("POST", "/api/queues/{channel}/{destination}/retry"): P.MANAGE_QUEUES,
    ("POST", "/api/queues/{channel}/{destination}/discard"): P.MANAGE_QUEUES,
    ("GET", "/api/messages"): P.VIEW_STATUS,  # patient search is checked in the handler
    ("GET", "/api/messages/{id}"): P.VIEW_STATUS,  # content is checked in the handler
    ("POST", "/api/messages/{id}/reprocess"): P.REPROCESS,
    ("GET", "/api/audit"): P.READ_AUDIT,
    ("GET", "/api/audit/verify"): P.READ_AUDIT,
    ("GET", "/api/audit/export"): P.READ_AUDIT,
    ("GET", "/api/audit/disclosures"): P.READ_AUDIT,
    ("POST", "/api/audit/disclosures"): P.READ_AUDIT,
    ("GET", "/api/revisions"): P.VIEW_STATUS,
    ("GET", "/api/revisions/{number}"): P.VIEW_STATUS,
    ("POST", "/api/revisions/{number}/{action}"): P.APPROVE_REVISIONS,
    ("GET", "/api/events"): P.VIEW_STATUS,
    ("GET", "/api/alerts"): P.VIEW_STATUS,
}


def _routes(metrics_open: bool) -> dict[tuple[str, str], object]:
    engine = SimpleNamespace(users=None, ops=SimpleNamespace(record=None))
    app = build_app(engine, metrics_open=metrics_open)
    return {(r.method, r.resource.canonical): getattr(r.handler, "permission", None)
            for r in app.router.routes()
            if r.method != "HEAD" and not r.resource.canonical.startswith("/static")}


def test_every_route_declares_the_documented_permission():
    assert _routes(metrics_open=False) == ROUTES


def test_metrics_open_makes_only_metrics_public():
    assert _routes(metrics_open=True) == {**ROUTES, ("GET", "/metrics"): PUBLIC}
