"""A real FHIR-ish HTTP server for tests: records what it receives and answers as told.

Scripted answers let a test make the receiving system fail (503, 429 with Retry-After,
400 with an OperationOutcome), hang, or recover, over a real socket.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from tests.loopback import LoopbackServer


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class FhirTestServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.script: deque[Answer] = deque()
        self.default = Answer(200)
        self.arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    async def _handle(self, request: web.Request) -> web.Response:
        answer = self.script.popleft() if self.script else self.default
        body = await request.read()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.status < 300:
            self.received.append(Received(request.method, request.path,
                                          dict(request.headers), body))
            self.arrived.set()
        payload = {"resourceType": "Bundle", "type": "transaction-response"}
        if answer.status >= 400:
            payload = {"resourceType": "OperationOutcome",
                       "issue": [{"severity": "error", "code": "processing"}]}
        return web.json_response(payload, status=answer.status, headers=answer.headers,
                                 content_type="application/fhir+json")

    async def start(self) -> FhirTestServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        await self.serve(app)
        return self


    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(enough(), timeout)
        return self.received
