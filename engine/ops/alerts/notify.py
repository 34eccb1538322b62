"""Delivery: every notification goes to the log, the audit trail (an ALERT event: names
and numbers only, never PHI, with what the on-call was told: engine.ops.alerts.told) and,
when configured, a webhook.

Delivery must never take the engine down: an audit write that fails is logged, and a
webhook that fails keeps its payloads (in order, bounded) for the next round.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from engine.config.alerts import WebhookConfig
from engine.ops.alerts.tracker import Notification

log = logging.getLogger("conduit.alerts")

OUTBOX_LIMIT = 1000  # webhook payloads kept while the receiver is down; oldest dropped


class Webhook:
    """POSTs one JSON body per notification; raises when the receiver did not take it."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.address = str(URL(config.url).with_user(None))
        self._session: aiohttp.ClientSession | None = None

    async def post(self, payload: dict[str, Any]) -> None:
        if self._session is None:
            headers = dict(self.config.headers)
            token = os.environ.get(self.config.bearer_token_env or "", "")
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        async with self._session.post(self.config.url, json=payload) as response:
            if response.status >= 300:
                raise RuntimeError(f"HTTP {response.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Notifier:
    """Sends each round's notifications to the log, the audit trail and the webhook."""

    def __init__(self, record: Callable[[list[Notification]], Awaitable[Any]],
                 webhook: Webhook | None = None, host: str | None = None) -> None:
        self._record = record
        self._webhook = webhook
        self._host = host or socket.gethostname()
        self._outbox: collections.deque[dict[str, Any]] = collections.deque()

    async def send(self, notes: list[Notification]) -> None:
        for note in notes:
            log.log(logging.INFO if note.state == "cleared" else logging.WARNING,
                    "alert %s", note.message)
        if notes:
            try:
                await self._record(notes)
            except Exception as exc:
                log.error("could not audit %d alert notification(s): %s", len(notes), exc)
        if self._webhook is not None:
            for note in notes:
                if len(self._outbox) >= OUTBOX_LIMIT:
                    self._outbox.popleft()
                    log.error("alert webhook backlog full; dropped the oldest notification")
                self._outbox.append(note.payload(self._host))
            await self._flush()

    async def _flush(self) -> None:
        """Send waiting payloads in order; stop at the first failure, keep the rest."""
        assert self._webhook is not None
        while self._outbox:
            try:
                await self._webhook.post(self._outbox[0])
            except Exception as exc:
                log.warning("alert webhook %s failed (%s); %d notification(s) will be "
                            "retried at the next evaluation", self._webhook.address,
                            str(exc) or type(exc).__name__, len(self._outbox))
                return
            self._outbox.popleft()

    async def close(self) -> None:
        """Say what the webhook never received, and release its connection."""
        if self._outbox:
            log.warning("%d alert notification(s) not delivered to the webhook at shutdown",
                        len(self._outbox))
        if self._webhook is not None:
            await self._webhook.close()
