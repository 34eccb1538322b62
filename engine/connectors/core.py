"""CAQH CORE connectivity destination: each message POSTed to a payer inside the CORE
HTTP+MIME envelope, the payer's answer read out of the same envelope.

The envelope is a multipart/form-data body of named fields: ProcessingMode (RealTime),
PayloadType, PayloadID (a fresh UUID per attempt), TimeStamp (UTC, ISO 8601), SenderID,
ReceiverID, CORERuleVersion, the optional UserName/Password, and Payload (the queued
content as it is). The payer answers with the same fields, its PayloadType naming what
its Payload is, or with an ErrorCode other than Success and an ErrorMessage.

What an answer means for the queue:
- 2xx, ErrorCode Success (or none), a Payload of one of `answer_types`, our PayloadID
  echoed (when echoed at all): Sent, with the Payload as the delivery's answer (kept
  sealed beside the message; a `respond:` channel returns it to its caller).
- An ErrorCode (sender not authorized, payload type not supported, ...): Fail with that
  code, unless it is one of `retry_codes` or came with a 5xx; the envelope is kept
  sealed with the dead letter. A Payload of another type (a 999 refusing our 270): Fail.
- Timeouts, connection failures, 408/429/5xx, an answer that is no CORE envelope: Retry.

This connector knows the envelope, not X12: the payload types are strings from the
config (defaults for the 5010 270/271), the Payload is never read, never logged.
`auth:` and `tls:` are the http destination's (bearer, basic or SMART; a private CA,
client certificates for mutual TLS, which CORE also allows for authentication).
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import logging
import os
import re
import uuid
from collections.abc import Mapping
from typing import Annotated

import aiohttp
import msgspec
from msgspec import Meta

from engine.config.base import DestinationBase
from engine.connectors.http import (
    HttpDestination,
    classify,
    connection_failure,
    kept_answer,
    parse_retry_after,
    read_body,
    retryable,
    status_text,
)
from engine.connectors.http_auth import ENV_NAME, AuthConfig, AuthUnavailable
from engine.connectors.tls import ClientTls
from engine.message import Answer, Delivery, Fail, Outbound, Retry, Sent

log = logging.getLogger("conduit.core")

_CODE = re.compile(r"[^A-Za-z0-9._-]")
_FIELD = re.compile(r"^[\x21-\x7e ]{1,80}\Z")  # an envelope value we write: printable


class CoreCredentials(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """CORE's own user name and password fields of the envelope."""

    username: Annotated[str, Meta(min_length=1, description="the UserName field")]
    password_env: Annotated[str, Meta(pattern=ENV_NAME, description=(
        "name of the environment variable holding the Password field (never the "
        "password itself)"))]


class CoreDestinationConfig(DestinationBase, tag="core", kw_only=True):
    url: Annotated[str, Meta(pattern=r"^https?://",
                             description="the payer's (or clearinghouse's) CORE endpoint")]
    sender_id: Annotated[str, Meta(pattern=_FIELD.pattern, description=(
        "SenderID: who we are to the receiver, as it registered us"))]
    receiver_id: Annotated[str, Meta(pattern=_FIELD.pattern, description=(
        "ReceiverID: the payer's id"))]
    payload_type: Annotated[str, Meta(pattern=_FIELD.pattern, description=(
        "PayloadType of what is sent"))] = "X12_270_Request_005010X279A1"
    answer_types: Annotated[list[Annotated[str, Meta(pattern=_FIELD.pattern)]], Meta(
        min_length=1, description="PayloadTypes of an answer that completes the delivery"
    )] = msgspec.field(default_factory=lambda: ["X12_271_Response_005010X279A1"])
    answer_content_type: Annotated[str, Meta(description=(
        "content type the answer's Payload is kept (and mapped) as"))] = "application/edi-x12"
    rule_version: Annotated[str, Meta(pattern=_FIELD.pattern, description=(
        "CORERuleVersion"))] = "2.2.0"
    retry_codes: Annotated[list[str], Meta(description=(
        "ErrorCodes that mean 'try again later' for this payer (all others dead-letter "
        "at once, unless they came with an HTTP 5xx)"))] = []
    concurrency: Annotated[int, Meta(ge=1, le=64, description=(
        "inquiries sent at once, each with its own retries; they stand alone, so the "
        "queue is not kept in order (1 sends one at a time, in order)"))] = 4
    credentials: Annotated[CoreCredentials | None, Meta(description=(
        "the envelope's UserName and Password fields"))] = None
    headers: Annotated[dict[str, str], Meta(description="extra request headers")] = {}
    auth: Annotated[AuthConfig | None, Meta(description=(
        "HTTP authentication as for the http destination: bearer, basic or "
        "smart-backend"))] = None
    tls: Annotated[ClientTls | None, Meta(description=(
        "for an https URL: the CA to trust, a client certificate and key (mutual TLS) "
        "and the server_name to verify"))] = None

    def __post_init__(self) -> None:
        if self.tls is not None and not self.url.lower().startswith("https://"):
            raise ValueError("tls applies to an https:// URL; this URL is plain http, so "
                             "nothing would be encrypted")


def envelope(fields: Mapping[str, str | bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body of `fields`, in order, and its Content-Type; the
    boundary is random and never found inside a value."""
    values = {k: v.encode() if isinstance(v, str) else v for k, v in fields.items()}
    while True:
        boundary = f"CORE-{uuid.uuid4().hex}"
        if not any(boundary.encode() in v for v in values.values()):
            break
    out = bytearray()
    for name, value in values.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n"
                "\r\n").encode()
        out += value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def read_envelope(content_type: str, body: bytes) -> dict[str, bytes] | None:
    """The named fields of a multipart/form-data body, or None when it is none."""
    if not content_type.lower().startswith("multipart/"):
        return None
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    except Exception:  # the parser is lenient; this is for what it still cannot take
        return None
    if not message.is_multipart():
        return None
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in fields:
            payload = part.get_payload(decode=True)
            fields[name] = payload if isinstance(payload, bytes) else b""
    return fields


def _text(fields: Mapping[str, bytes], name: str) -> str:
    return fields.get(name, b"").decode("utf-8", errors="replace").strip()


class CoreDestination(HttpDestination):
    """The http destination's session, TLS and authentication, speaking CORE: each
    message is posted in the CORE envelope and the payer's envelope read back."""

    config: CoreDestinationConfig  # type: ignore[assignment]  # a dialect's own settings

    def connections(self) -> int:
        return max(8, self.config.concurrency)

    def fields(self, outbound: Outbound, payload_id: str) -> dict[str, str | bytes]:
        """The request envelope's fields for one attempt. Raises AuthUnavailable when
        the CORE password's variable is not set."""
        cfg = self.config
        fields: dict[str, str | bytes] = {
            "ProcessingMode": "RealTime", "PayloadType": cfg.payload_type,
            "PayloadID": payload_id,
            "TimeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "SenderID": cfg.sender_id, "ReceiverID": cfg.receiver_id,
            "CORERuleVersion": cfg.rule_version}
        if cfg.credentials is not None:
            password = os.environ.get(cfg.credentials.password_env)
            if not password:
                raise AuthUnavailable(f"environment variable {cfg.credentials.password_env} "
                                      "(the CORE Password) is not set")
            fields["UserName"] = cfg.credentials.username
            fields["Password"] = password
        fields["Payload"] = outbound.content
        return fields

    async def send(self, outbound: Outbound) -> Delivery:
        if self._session is None:
            await self.open()
        assert self._session is not None
        payload_id = str(uuid.uuid4())
        try:
            body, content_type = envelope(self.fields(outbound, payload_id))
            credentials = await self._auth.authorization()
        except AuthUnavailable as exc:
            return Retry(f"authentication: {exc}")
        headers = {"Content-Type": content_type}
        if credentials:
            headers["Authorization"] = credentials
        try:
            async with self._session.post(self.config.url, data=body, headers=headers,
                                          server_hostname=self._server_name) as resp:
                answer = await read_body(resp)
                if resp.status == 401 and self._auth.refused():
                    return Retry("HTTP 401 Unauthorized: the access token was refused; the "
                                 "next attempt fetches a new one", code="401")
                if resp.status != 401:
                    self._auth.accepted()
                return self.read_envelope_answer(resp.status, resp.headers, answer, payload_id)
        except TimeoutError:
            return Retry("no answer within the timeout")
        except aiohttp.ClientError as exc:
            return Retry(connection_failure(exc))

    def read_envelope_answer(self, status: int, headers: Mapping[str, str], body: bytes,
                             payload_id: str) -> Delivery:
        """What the payer's answer means for the queue (see the module's docstring)."""
        kept = kept_answer(headers, body)
        fields = read_envelope(headers.get("Content-Type", ""), body)
        if fields is None:
            if 200 <= status < 300:
                return Retry("the answer is not a CORE envelope (multipart/form-data)",
                             code=str(status), answer=kept)
            return classify(status, headers.get("Retry-After"), answer=kept)
        error = _CODE.sub("", _text(fields, "ErrorCode"))[:40]
        if error and error.lower() != "success":
            text = f"CORE ErrorCode {error}" + (f" ({status_text(status)})"
                                                if status >= 300 else "")
            if retryable(status) or error in self.config.retry_codes:
                return Retry(text, code=error, answer=kept,
                             after=parse_retry_after(headers.get("Retry-After")))
            return Fail(text, code=error, answer=kept)
        if not 200 <= status < 300:
            return classify(status, headers.get("Retry-After"), answer=kept,
                            detail="CORE envelope without an ErrorCode")
        echoed = _text(fields, "PayloadID")
        if echoed and echoed.lower() != payload_id:
            return Retry("the answer names another PayloadID than the request's",
                         code=str(status))
        kind = _text(fields, "PayloadType")
        payload = fields.get("Payload", b"")
        if not payload.strip():
            return Retry("the CORE answer carries no Payload", code=str(status))
        if kind not in self.config.answer_types:
            shown = _CODE.sub("", kind)[:60] or "none"
            return Fail(f"the payer answered PayloadType {shown}, not "
                        f"{' or '.join(self.config.answer_types)}", code=str(status),
                        answer=Answer(payload, self.config.answer_content_type))
        return Sent(str(status), answer=Answer(payload, self.config.answer_content_type))
