"""A payer's CAQH CORE real-time endpoint for tests: aiohttp on 127.0.0.1.

It reads the HTTP+MIME envelope with aiohttp's own multipart parser (not the engine's),
checks the CORE fields a payer checks (processing mode, payload type, a UUID PayloadID,
a UTC TimeStamp, who sends to whom, the rule version, the password when it expects one),
reads the 270 with the engine's X12 codec and answers a 271 built from it: coverage
active, one office-visit copay. Or, as a test asks: slowly (`delay`), with a CORE error
(`error`), or with nothing readable. Every request is kept for the test to inspect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import uuid
from typing import Any

from aiohttp import web

from engine.errors import ParseError
from engine.formats.x12.build import Delimiters, interchange
from engine.formats.x12.codec import X12Codec
from engine.formats.x12.message import X12Message
from engine.message import Outcome, Problem, Verdict

REQUEST_TYPE = "X12_270_Request_005010X279A1"
RESPONSE_TYPE = "X12_271_Response_005010X279A1"
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z\Z")


@dataclasses.dataclass
class Received:
    fields: dict[str, str]
    content_type: str
    answered: str  # "271" or the ErrorCode sent back


class CorePayer:
    def __init__(self, *, sender_id: str = "HARBORSIDE01", receiver_id: str = "ACMEHEALTH",
                 password: str | None = None, delimiters: Delimiters | None = None) -> None:
        self.sender_id, self.receiver_id, self.password = sender_id, receiver_id, password
        self.delimiters = delimiters or Delimiters()
        self.delay = 0.0  # seconds before answering
        self.error: tuple[str, str] | None = None  # (ErrorCode, ErrorMessage) to answer
        self.status = 200
        self.received: list[Received] = []
        self.requests = 0  # every request seen, answered or not
        # answers to give first, one per request: (HTTP status, body, headers), no envelope
        self.script: list[tuple[int, bytes, dict[str, str]]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._control = 7000

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/core/realtime"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/core/realtime", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.script:
            status, raw, headers = self.script.pop(0)
            return web.Response(status=status, body=raw, headers=headers)
        content_type = request.headers.get("Content-Type", "")
        form = await request.post()
        fields = {k: (v if isinstance(v, str) else v.file.read().decode())
                  for k, v in form.items()}
        problem = self._check(content_type, fields)
        if self.delay:
            await asyncio.sleep(self.delay)
        if problem is None and self.error is not None:
            problem = self.error
        if problem is not None:
            self.received.append(Received(fields, content_type, problem[0]))
            return self._answer(fields, {"PayloadType": "CoreEnvelopeError",
                                         "ErrorCode": problem[0], "ErrorMessage": problem[1]})
        try:
            answer = self.reply_271(fields["Payload"])
        except ParseError as exc:  # a broken 270: the payer's 999 rejects it
            self.received.append(Received(fields, content_type, "999"))
            rejected = Outcome(Verdict.REJECTED, (Problem(exc.message, code="5"),))
            return self._answer(fields, {
                "PayloadType": "X12_999_Response_005010X231A1", "ErrorCode": "Success",
                "ErrorMessage": "", "Payload": X12Codec().reply(
                    fields["Payload"].encode(), None, rejected).decode()})
        self.received.append(Received(fields, content_type, "271"))
        return self._answer(fields, {"PayloadType": RESPONSE_TYPE, "ErrorCode": "Success",
                                     "ErrorMessage": "", "Payload": answer})

    def _check(self, content_type: str, fields: dict[str, str]) -> tuple[str, str] | None:
        """The first thing wrong with the envelope, as (ErrorCode, ErrorMessage)."""
        if not content_type.startswith("multipart/form-data"):
            return "EnvelopeNotMultipart", "the envelope must be multipart/form-data"
        try:
            uuid.UUID(fields.get("PayloadID", ""))
        except ValueError:
            return "PayloadIDIllegal", "PayloadID must be a UUID"
        checks = [
            ("ProcessingMode", fields.get("ProcessingMode") == "RealTime",
             "ProcessingModeNotSupported"),
            ("PayloadType", fields.get("PayloadType") == REQUEST_TYPE,
             "PayloadTypeNotSupported"),
            ("TimeStamp", bool(_STAMP.match(fields.get("TimeStamp", ""))), "TimeStampIllegal"),
            ("SenderID", fields.get("SenderID") == self.sender_id, "SenderNotAuthorized"),
            ("ReceiverID", fields.get("ReceiverID") == self.receiver_id, "ReceiverIDIllegal"),
            ("CORERuleVersion", fields.get("CORERuleVersion") == "2.2.0", "VersionMismatch"),
            ("Password", self.password is None or fields.get("Password") == self.password,
             "UnAuthorized"),
            ("Payload", fields.get("Payload", "").lstrip().startswith("ISA"),
             "PayloadIllegal"),
        ]
        for name, ok, code in checks:
            if not ok:
                return code, f"{name} was not accepted"
        return None

    def _answer(self, request: dict[str, str], answer: dict[str, str]) -> web.Response:
        fields = {"ProcessingMode": "RealTime", "PayloadID": request.get("PayloadID", ""),
                  "TimeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "SenderID": self.receiver_id, "ReceiverID": request.get("SenderID", ""),
                  "CORERuleVersion": "2.2.0", **answer}
        boundary = f"payer{uuid.uuid4().hex}"
        body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                       f"{v}\r\n" for k, v in fields.items()) + f"--{boundary}--\r\n"
        return web.Response(status=self.status, body=body.encode(), headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}"})

    def reply_271(self, payload: str) -> str:
        """The 271 a payer sends for this 270: its payer, provider and subscriber back,
        the trace number echoed (TRN*2), coverage active, a $25 office-visit copay."""
        body: X12Message = X12Codec().parse(payload.encode()).body
        self._control += 1
        payer = body.find("NM1", "PR")
        provider = body.find("NM1", "1P")
        member = body.find("NM1", "IL")
        assert payer is not None and provider is not None and member is not None
        trace = body.find("TRN", "1")
        segments: list[list[Any]] = [
            ["BHT", "0022", "11", body.value("BHT03"), "20261203", "1016"],
            ["HL", "1", "", "20", "1"], payer.elements,
            ["HL", "2", "1", "21", "1"], provider.elements,
            ["HL", "3", "2", "22", "0"],
            *([["TRN", "2", *trace.elements[2:]]] if trace is not None else []),
            member.elements,
            ["DTP", "346", "D8", "20260101"],
            ["EB", "1", "IND", "30", "HM", "ACME GOLD HMO"],
            ["EB", "B", "IND", "98", "HM", "", "27", "25"],
        ]
        return interchange([("271", "005010X279A1", segments)],
                           sender=("ZZ", self.receiver_id), receiver=("ZZ", self.sender_id),
                           control_number=self._control, delimiters=self.delimiters)
