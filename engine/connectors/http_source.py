"""A plain HTTP listener as a channel source (type `http`): each POST's body is one
message, the answer is the channel's reply.

For standards whose senders speak HTTP without a protocol of their own: a raw X12 270
posted by a practice system (answered with the 271 when the channel has `respond:`,
else with the 999), an HL7v2 message (answered with its ACK). The listener knows no
standard: the body goes to the channel as it came, and the reply goes back labelled
with the channel codec's content type.

Answers, after `deliver` returns (that is, after the durable commit):
- accepted, filtered or a duplicate: 200 with the reply (the codec's acknowledgement);
- rejected: 400, stored with its status: 422 (both with the reply when there is one);
  with `reply_status: always-ok`, 200 whenever there is a reply, for standards whose
  answer says in its body whether the message was taken on (a SCRIPT Error: network
  intermediaries read a delivered Error from a 200, and treat a 4xx as a transport
  failure to retry);
- not stored: 503 with Retry-After, so the sender sends again;
- a `respond:` channel: 200 with the destination's answer; none in time: 504, the
  receiver refused: 502 (a short text reason; the message stays stored, and queued
  after a timeout).
What HTTP itself judges is refused before anything is stored: another method or path
(405/404), no body (400), a body over `max_request_size` (413, unread), one that does not
arrive within `read_timeout` (408), a client over its `max_requests_per_peer` requests
in flight (429), an address outside `allow` (403), a missing or bad bearer token (401;
`auth:` as for the FHIR source: the engine's users, an issuer's JWTs, or none).
No access log: nothing of a request but its outcome and the peer is logged.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import Counter
from typing import Annotated, Literal, NoReturn

from aiohttp import web
from msgspec import Meta

from engine.config.base import SourceBase
from engine.config.types import ByteSize, Duration, Network
from engine.connectors.admission import peer_address, peer_key
from engine.connectors.base import Deliver, SourceContext
from engine.connectors.fhir_source_auth import AuthConfig, Authenticator, Refused
from engine.connectors.http_listener import (
    BodyRefused,
    ConnectionGuard,
    MaxConnections,
    MaxConnectionsPerPeer,
    ReadTimeout,
    listen,
    read_body,
    take_over,
)
from engine.connectors.tls import ServerTls, exposed
from engine.events import Event, Kind
from engine.log_limit import RateLimitedLog
from engine.message import MessageStatus, Receipt, SourceMeta

log = logging.getLogger("conduit.http")

_TEXT = "text/plain"
# A request/response channel's outcome (engine.message.Response) without an answer.
_RESPONDED = {"timeout": 504, "refused": 502, "bad-answer": 502}


class HttpSourceConfig(SourceBase, tag="http"):
    port: Annotated[int, Meta(ge=1, le=65535, description="TCP port to listen on (HTTP, or "
                                                          "HTTPS with tls)")]
    auth: Annotated[
        AuthConfig,
        Meta(description="who may post: {type: users} (tokens of engine users whose role "
                         "may submit), {type: jwt, issuer, audience, jwks_url, scopes}, or "
                         "{type: none}"),
    ]
    host: Annotated[str, Meta(description="address to bind; 0.0.0.0 for every interface")] = (
        "127.0.0.1"
    )
    path: Annotated[str, Meta(pattern=r"^/[A-Za-z0-9._~/-]*$",
                              description="the path messages are POSTed to")] = "/"
    tls: Annotated[
        ServerTls | None, Meta(description="serve HTTPS (and require client certificates "
                                           "with client_ca)")
    ] = None
    insecure: Annotated[
        bool, Meta(description="allow listening on a non-loopback host without tls; "
                               "messages and bearer tokens then cross the network in clear "
                               "(logged, and shown on the status page)")
    ] = False
    max_request_size: Annotated[
        ByteSize, Meta(description="larger request bodies are refused with 413 unread")
    ] = ByteSize(10 * 1024 * 1024)
    read_timeout: ReadTimeout = Duration(30.0)
    max_connections: MaxConnections = 200
    max_connections_per_peer: MaxConnectionsPerPeer = 20
    max_requests_per_peer: Annotated[
        int, Meta(ge=1, description="requests one address (an IPv6 /64) may have in flight "
                                    "at once; more are answered 429")
    ] = 20
    allow: Annotated[
        list[Network], Meta(description="networks senders may post from (CIDR); empty: any")
    ] = []
    reply_status: Annotated[
        Literal["verdict", "always-ok"],
        Meta(description="HTTP status of a reply: by the engine's verdict (400 rejected, "
                         "422 error), or always-ok: 200 whenever a reply is sent, for "
                         "standards whose reply says it (NCPDP SCRIPT Status/Error)"),
    ] = "verdict"

    def resources(self) -> list[str]:
        return [f"tcp:{self.port}"]


class _Answer(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type=_TEXT, headers=headers)


class HttpSource:
    def __init__(self, config: HttpSourceConfig, context: SourceContext) -> None:
        self.config = config
        self.context = context
        self.auth = Authenticator(config.auth, context.users)
        self._networks = [ipaddress.ip_network(n) for n in config.allow]
        self._deliver: Deliver | None = None
        self._runner: web.AppRunner | None = None
        self._guard: ConnectionGuard | None = None
        self._adopted: socket.socket | None = None  # taken over from the source replaced
        self._in_flight: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._notices = RateLimitedLog(log)

    @property
    def address(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.config.host}:{self.config.port}{self.config.path}"

    def resources(self) -> list[str]:
        return self.config.resources()

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        sock, self._adopted = self._adopted, None
        self._runner, self._guard = await listen(
            self.config, self._handle, self.address, log, "http", "messages",
            self.context.shared_port, sock)

    def take_over(self, other: object) -> bool:
        """Serve, once started, the socket `other` (the source this one replaces in a
        swap) listens on (engine.connectors.http_listener.take_over)."""
        self._adopted = take_over(self, other)
        return self._adopted is not None

    async def stop(self) -> None:
        """Stop accepting; requests in flight finish and get their answers."""
        if self._adopted is not None:  # taken over but never started
            self._adopted.close()
            self._adopted = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def describe(self) -> dict[str, object]:
        guard = self._guard.admission if self._guard is not None else None
        return {"address": self.address, "peers": sorted(self._in_flight),
                "refused": dict(self.refused + guard.refused if guard else self.refused),
                "evicted": guard.evicted if guard else 0,
                "insecure": exposed(self.config.host, self.config.tls)}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = request.remote or ""
        address = peer_address(host)
        key = peer_key(address, host)
        try:
            if self._networks and not (address is not None and any(
                    address in n for n in self._networks)):
                self._refuse("not allowed", key)
                raise _Answer(_text(403, "this address may not post here"))
            if request.path.rstrip("/") != self.config.path.rstrip("/"):
                raise _Answer(_text(404, f"messages are posted to {self.config.path}"))
            if request.method != "POST":
                raise _Answer(_text(405, "POST a message here", Allow="POST"))
            if self._in_flight[key] >= self.config.max_requests_per_peer:
                self._refuse("peer limit", key)
                raise _Answer(_text(429, "too many requests in flight from this address",
                                    **{"Retry-After": "1"}))
            self._in_flight[key] += 1
            try:
                return await self._take(request, host)
            finally:
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]
        except _Answer as answer:
            return answer.response
        except Exception as exc:  # a bug must cost one request, never the daemon
            log.error("http %s: a request failed (%s)", self.address, type(exc).__name__)
            return _text(500, "the engine failed on this request; nothing was taken on")

    def _refuse(self, reason: str, key: str) -> None:
        self.refused[reason] += 1
        self._notices.log(logging.WARNING, (reason, key), "http %s: refusing %s: %s",
                          self.address, key, reason)

    async def _take(self, request: web.Request, host: str) -> web.StreamResponse:
        try:
            client = await self.auth.authenticate(request.headers.get("Authorization", ""))
        except Refused as refused:
            await self._deny(request, refused)
        raw = await self._read_body(request)
        if not raw.strip():
            raise _Answer(_text(400, "the request has no body"))
        assert self._deliver is not None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        meta = SourceMeta("http", f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else host,
                          len(raw), False, client.name)
        try:
            receipt = await self._deliver(raw, meta)
        except Exception as exc:
            log.error("http %s: the channel failed on a message (%s)", self.address,
                      type(exc).__name__)
            return _text(500, "the engine failed on this message; send it again")
        response = self._answer(receipt)
        await response.prepare(request)
        await response.write_eof()
        receipt.replied()
        return response

    def _answer(self, receipt: Receipt) -> web.Response:
        headers = {"X-Conduit-Message-Id": receipt.message_id} if receipt.message_id else {}
        if receipt.response is not None:
            response = receipt.response
            if response.outcome == "answered":
                return web.Response(status=200, body=response.body, headers=headers,
                                    content_type=response.content_type.partition(";")[0]
                                    or "application/octet-stream")
            return _text(_RESPONDED.get(response.outcome, 502), response.reason, **headers)
        if not receipt.message_id:
            return _text(503, "the engine could not store the message; send it again",
                         **{"Retry-After": "10"})
        status = {MessageStatus.REJECTED: 400, MessageStatus.ERROR: 422}.get(
            receipt.status, 200)
        reply = receipt.replies[-1] if receipt.replies else b""
        if reply and self.config.reply_status == "always-ok":
            status = 200
        if not reply:
            return _text(status, f"message {receipt.message_id}: {receipt.status.value}",
                         **headers)
        return web.Response(status=status, body=reply, headers=headers,
                            content_type=self.context.content_type)

    async def _deny(self, request: web.Request, refused: Refused) -> NoReturn:
        """Audit the refusal (its reason, never the token), then answer it."""
        if self.context.record is not None and refused.status in (401, 403):
            await self.context.record(Event(
                kind=Kind.DENIED, actor="anonymous", channel=self.context.channel,
                peer=request.remote or "", detail={
                    "method": request.method, "route": self.config.path,
                    "status": refused.status, "why": refused.reason}))
        headers = {}
        if refused.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="conduit"'
        elif refused.status == 503:
            headers["Retry-After"] = "30"
        raise _Answer(_text(refused.status, refused.reason, **headers))

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, bounded in size and in time; a refusal closes the connection."""
        try:
            return await read_body(request, self.config.max_request_size,
                                   self.config.read_timeout)
        except BodyRefused as exc:
            refusal = _text(exc.status, exc.reason)
            refusal.force_close()
            raise _Answer(refusal) from None
