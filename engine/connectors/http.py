"""HTTP destination: POST (or PUT) each message to a URL and classify the answer.

2xx is delivered; 408, 429 and 5xx, timeouts and connection errors are retried
(honouring Retry-After); any other status is permanent and goes to the dead letters.
"""

from __future__ import annotations

import email.utils
import os
import time
from http import HTTPStatus
from typing import Annotated, Literal

import aiohttp
from msgspec import Meta
from yarl import URL

from engine.config.base import DestinationBase
from engine.connectors.base import DestinationContext
from engine.message import Delivery, Fail, Outbound, Retry, Sent

_RETRY_STATUSES = {408, 425, 429}


class HttpDestinationConfig(DestinationBase, tag="http"):
    url: Annotated[str, Meta(pattern=r"^https?://", description="where to send; http(s) URL")]
    method: Annotated[Literal["POST", "PUT"], Meta(description="HTTP method")] = "POST"
    headers: Annotated[
        dict[str, str], Meta(description="extra request headers (values may use ${ENV})")
    ] = {}
    bearer_token_env: Annotated[
        str | None,
        Meta(description="name of an environment variable holding a bearer token"),
    ] = None


class HttpDestination:
    def __init__(self, config: HttpDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._context = context
        self._session: aiohttp.ClientSession | None = None

    @property
    def address(self) -> str:
        """The URL without any user or password in it."""
        return str(URL(self.config.url).with_user(None))

    async def open(self) -> None:
        headers = dict(self.config.headers)
        if self.config.bearer_token_env:
            token = os.environ.get(self.config.bearer_token_env, "")
            if token:
                headers["Authorization"] = f"Bearer {token}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            connector=aiohttp.TCPConnector(limit=8, keepalive_timeout=30),
        )

    def request_for(self, outbound: Outbound) -> tuple[str, str, dict[str, str]]:
        """Method, URL and headers for one message; subclasses speak dialects of HTTP."""
        return self.config.method, self.config.url, {"Content-Type": outbound.content_type}

    async def send(self, outbound: Outbound) -> Delivery:
        if self._session is None:
            await self.open()
        assert self._session is not None
        method, url, headers = self.request_for(outbound)
        try:
            async with self._session.request(
                method, url, data=outbound.content, headers=headers
            ) as resp:
                await resp.read()
                return classify(resp.status, resp.headers.get("Retry-After"))
        except TimeoutError:
            return Retry("no answer within the timeout")
        except aiohttp.ClientError as exc:
            return Retry(f"connection failed: {type(exc).__name__}")

    async def healthcheck(self) -> str | None:
        return None if self._session is not None else "not open"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def classify(status: int, retry_after: str | None) -> Delivery:
    """What an HTTP status means for the queue. The reason text is the standard phrase,
    never the server's own, which could quote the patient back at us."""
    code = str(status)
    if 200 <= status < 300:
        return Sent(code)
    try:
        text = f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        text = f"HTTP {status}"
    if status in _RETRY_STATUSES or status >= 500:
        return Retry(text, code=code, after=parse_retry_after(retry_after))
    return Fail(text, code=code)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: either delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
