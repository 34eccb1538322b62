"""HTTP destination: POST (or PUT) each message to a URL and classify the answer.

2xx is delivered; 408, 425, 429 and 5xx, timeouts and connection errors are retried
(honouring Retry-After); any other status is permanent and goes to the dead letters,
with the receiver's answer body kept (sealed) for the analyst. Authentication (static
bearer, basic, SMART backend services) is `auth:`; see http_auth. `tls:` trusts a
hospital's own CA, presents a client certificate (mutual TLS) and may name the server to
verify; a receiver whose certificate fails verification is retried with a reason saying
so (the operator must act: time alone will not fix it).

`read_reply: true` is for standards answered in the same exchange (an NCPDP SCRIPT
Status or Error, an HL7v2 ACK): a 2xx answer's body is read by the channel's codec
(the context's reply_reader), so a pharmacy's Error 900 is a dead letter and its Error
602 a retry, though both came with HTTP 200.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import ssl
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Literal

import aiohttp
from msgspec import Meta
from yarl import URL

from engine.config.base import DestinationBase
from engine.connectors.base import DestinationContext
from engine.connectors.http_auth import AuthConfig, AuthUnavailable, authenticator_for
from engine.connectors.http_client import BadAnswer, ConnectionClosed, HttpClient
from engine.connectors.tls import ClientTls, client_context
from engine.errors import ConduitError
from engine.message import Answer, Delivery, Fail, Outbound, Retry, Sent

log = logging.getLogger("conduit.http")

_RETRY_STATUSES = {408, 425, 429}
MAX_BODY = 8 * 1024 * 1024  # an answer is read up to this; the rest is left unread


class HttpDestinationConfig(DestinationBase, tag="http"):
    url: Annotated[str, Meta(pattern=r"^https?://", description="where to send; http(s) URL")]
    method: Annotated[Literal["POST", "PUT"], Meta(description="HTTP method")] = "POST"
    headers: Annotated[
        dict[str, str], Meta(description="extra request headers (values may use ${ENV})")
    ] = {}
    auth: Annotated[
        AuthConfig | None,
        Meta(description="how to authenticate to the server: type bearer, basic or "
             "smart-backend; secrets come from environment variables or a key file"),
    ] = None
    tls: Annotated[
        ClientTls | None,
        Meta(description="for an https URL: the CA to trust (default: the system's), a "
             "client certificate and key for mutual TLS, and the server_name to verify"),
    ] = None
    read_reply: Annotated[
        bool, Meta(description="read a 2xx answer's body as the standard's own answer "
                               "with the channel's codec (a SCRIPT Status or Error, an "
                               "HL7v2 ACK) instead of taking any 2xx as delivered")
    ] = False

    def __post_init__(self) -> None:
        if self.tls is not None and not self.url.lower().startswith("https://"):
            raise ValueError("tls applies to an https:// URL; this URL is plain http, so "
                             "nothing would be encrypted")


class Unsendable(ConduitError):
    """This message can never be sent as it is (an update without an id, say): the
    destination answers Fail, so it goes to the dead letters at once."""


class HttpDestination:
    def __init__(self, config: HttpDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._context = context
        self._client: HttpClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tls: ssl.SSLContext | None = client_context(config.tls) if config.tls else None
        self._server_name = config.tls.server_name if config.tls else None
        self._auth = authenticator_for(config.auth, config.timeout, tls=self._tls)

    @property
    def address(self) -> str:
        """The URL without any user or password in it."""
        return str(URL(self.config.url).with_user(None))

    async def open(self) -> None:
        problem = self._auth.problem()
        if problem:  # say so at start, not only when the first message waits on it
            log.warning("destination %s: authentication will fail until fixed: %s",
                        self.config.name, problem)
        self._client = HttpClient(self.connections(), tls=self._tls,
                                  server_name=self._server_name, max_body=MAX_BODY,
                                  headers=dict(self.config.headers))
        # for subclasses that post through aiohttp themselves (engine.connectors.core)
        self._session = aiohttp.ClientSession(
            headers=dict(self.config.headers),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            connector=aiohttp.TCPConnector(limit=self.connections(), keepalive_timeout=30,
                                           ssl=self._tls if self._tls else True),
        )

    def connections(self) -> int:
        """Connections kept to the receiver: 8 serve a FIFO queue sent one at a time, and
        one per message in flight beyond (`concurrency`)."""
        return max(8, self.config.concurrency)

    def request_for(self, outbound: Outbound) -> tuple[str, str, dict[str, str]]:
        """Method, URL and headers for one message; subclasses speak dialects of HTTP.
        Raises Unsendable for a message no retry could ever deliver."""
        return self.config.method, self.config.url, {"Content-Type": outbound.content_type}

    def body_for(self, outbound: Outbound) -> bytes:
        """What is sent: the content as queued, unless a dialect must adjust it."""
        return outbound.content

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> Delivery:
        """What the receiver's answer means for the queue; subclasses read their
        standard's error bodies for a better (still PHI-free) reason."""
        return classify(status, headers.get("Retry-After"), answer=kept_answer(headers, body))

    async def send(self, outbound: Outbound) -> Delivery:
        if self._client is None:
            await self.open()
        assert self._client is not None
        try:
            method, url, headers = self.request_for(outbound)
        except Unsendable as exc:
            return Fail(str(exc))
        try:
            credentials = await self._auth.authorization()
        except AuthUnavailable as exc:
            return Retry(f"authentication: {exc}")
        if credentials:
            headers["Authorization"] = credentials
        try:
            async with asyncio.timeout(self.config.timeout):
                answer = await self._client.request(method, url, headers,
                                                    self.body_for(outbound))
        except TimeoutError:
            return Retry("no answer within the timeout")
        except OSError as exc:  # ssl.SSLError and the client's own errors among them
            return Retry(failure_reason(exc))
        status, body = answer.status, answer.body
        if status == 401 and self._auth.refused():
            return Retry("HTTP 401 Unauthorized: the access token was refused; the next "
                         "attempt fetches a new one", code="401")
        if status != 401:
            self._auth.accepted()
        reader = self._context.reply_reader
        if self.config.read_reply and 200 <= status < 300 and reader is not None:
            return reader.read_reply(body, outbound)
        return self.read_answer(status, answer.headers, body)

    async def healthcheck(self) -> str | None:
        return None if self._client is not None else "not open"

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._auth.close()


async def read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The answer's body, up to MAX_BODY (a receiver cannot make us hold more)."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


def connection_failure(exc: aiohttp.ClientError) -> str:
    """Why a connection failed, without PHI: a TLS failure says what to fix (a CA to
    trust, the server name), the rest the system's words or the error's type. (A receiver
    that wants a client certificate we did not give just resets under TLS 1.3.)"""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = getattr(exc.certificate_error, "verify_message", "") or "verification failed"
        return (f"TLS: the receiver's certificate is not trusted ({why}); check tls.ca "
                "and tls.server_name")
    if isinstance(exc, aiohttp.ClientSSLError):
        reason = getattr(exc.os_error, "reason", None) or type(exc.os_error).__name__
        return f"TLS handshake failed ({reason})"
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        return f"connection failed: {exc.strerror}"
    return f"connection failed: {type(exc).__name__}"


def failure_reason(exc: OSError) -> str:
    """connection_failure for the destination's own client: why a connection failed,
    without PHI; a TLS failure says what to fix."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or "verification failed"
        return (f"TLS: the receiver's certificate is not trusted ({why}); check tls.ca "
                "and tls.server_name")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, (ConnectionClosed, BadAnswer)):
        return f"connection failed: {exc}"
    if exc.strerror:
        return f"connection failed: {exc.strerror}"
    return f"connection failed: {type(exc).__name__}"


def kept_answer(headers: Mapping[str, str], body: bytes) -> Answer | None:
    """The receiver's answer as kept with a failed delivery (classify drops it for a
    success); None when it said nothing."""
    return Answer(body, headers.get("Content-Type", "")) if body else None


def classify(status: int, retry_after: str | None, *, detail: str = "",
             answer: Answer | None = None) -> Delivery:
    """What an HTTP status means for the queue. The reason text is the standard phrase
    (plus `detail`, a PHI-free summary the caller made), never the server's own words,
    which could quote the patient back at us; those travel sealed, as `answer`."""
    code = str(status)
    if 200 <= status < 300:
        return Sent(code)
    text = status_text(status) + (f": {detail}" if detail else "")
    if retryable(status):
        return Retry(text, code=code, after=parse_retry_after(retry_after), answer=answer)
    return Fail(text, code=code, answer=answer)


def status_text(status: int) -> str:
    """The status with its standard phrase (HTTP 422 Unprocessable Entity), never the
    server's own."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def retryable(status: int) -> bool:
    """Whether a receiver that answered `status` may take the message later."""
    return status in _RETRY_STATUSES or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: either delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's UTC of unknown origin
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
