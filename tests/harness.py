"""Helpers for tests that run the engine in-process over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import textwrap
from pathlib import Path

from engine.config.checks import check
from engine.config.loader import load_all
from engine.connectors.mllp import MllpClient
from engine.formats.hl7v2 import Hl7Message
from engine.mapping import MappingCatalog
from engine.runtime import Engine
from engine.web.server import serve

REPO = Path(__file__).resolve().parent.parent


# Ports handed to listeners that start later come from below the kernel's ephemeral
# range (32768-60999 here): a port the kernel picked for `bind(0)` can be given again to
# any test's outgoing connection before the listener binds it ("address already in
# use"). Each pytest-xdist worker takes its own band, so workers never pick alike.
_BAND = 2500


def _band() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % 4 if worker.isdigit() else 0
    return range(20000 + _BAND * index, 20000 + _BAND * (index + 1))


_ports = itertools.cycle(_band())


def free_port() -> int:
    """A loopback port nobody listens on now, for a listener this test starts."""
    for port in _ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("unreachable: the cycle never ends")


def adt(control_id: str, mrn: str, event: str = "A01", family: str = "TESTPATIENT",
        facility: str = "NORTHWING", version: str = "2.5.1") -> bytes:
    """A realistic ADT message with a unique control id and MRN."""
    return (
        f"MSH|^~\\&|EPIC|{facility}|CONDUIT|{facility}|20240301101500-0500||ADT^{event}^ADT_A01|"
        f"{control_id}|P|{version}\r"
        f"EVN|{event}|20240301101500-0500\r"
        f"PID|1||{mrn}^^^{facility}^MR||{family}^ALEX^J||19700412|F|||"
        "12 ELM ST^^SPRINGFIELD^IL^62701^USA^H||^PRN^PH^^1^217^5550134\r"
        f"PV1|1|I|4W^401^A^{facility}||||1234^WELBY^MARCUS||||||||||||V{mrn}\r"
    ).encode()


def written(folder: Path) -> list[Path]:
    """The files a file destination has finished in `folder`, by name. It writes
    `.<name>.tmp` and then renames it, so a dot-file is one still being written, which may
    be gone by the time it is read."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


async def exchange(port: int, payloads: list[bytes], timeout: float = 10.0) -> list[Hl7Message]:
    """Send each payload on one connection; return the parsed ACKs."""
    client = MllpClient("127.0.0.1", port)
    await client.connect(timeout)
    try:
        return [Hl7Message.parse((await client.exchange(p, timeout)).decode()) for p in payloads]
    finally:
        await client.close()


class EngineHarness:
    """Writes a conf and channel files into a folder and runs an Engine on them."""

    def __init__(self, root: Path, store_url: str | None = None, *, conf: str = "",
                 web_port: int = 0, web: dict[str, str] | None = None,
                 mappings_dir: Path | None = None) -> None:
        """`conf` is YAML added to the engine settings (alerts:, slo:, tracing: ...);
        `web_port` 0 leaves the web listener off; `web` adds settings under web:."""
        self.root = root
        self.data = root / "data"
        self.store_url = store_url
        self.conf = conf
        self.web_port = web_port
        self.web = web or {}
        self.mappings_dir = mappings_dir or REPO / "mappings"
        self.engine: Engine | None = None

    async def start(self, channels: dict[str, str]) -> Engine:
        (self.root / "channels").mkdir(exist_ok=True)
        for name, text in channels.items():
            (self.root / "channels" / f"{name}.yaml").write_text(textwrap.dedent(text))
        conf = self.root / "conduit.yaml"
        conf.write_text(
            f"data_dir: {self.data}\nchannels_dir: {self.root / 'channels'}\n"
            f"mappings_dir: {self.mappings_dir}\n"
            f"web:\n  host: 127.0.0.1\n  port: {self.web_port}\n"
            + "".join(f"  {key}: {value}\n" for key, value in self.web.items())
            + (f"store:\n  url: {self.store_url}\n" if self.store_url else "")
            + textwrap.dedent(self.conf)
        )
        engine_cfg, loaded = load_all(conf, {})
        catalog = MappingCatalog.discover(engine_cfg.mappings_dir)
        assert check(engine_cfg, loaded, catalog) == []
        self.engine = Engine(engine_cfg, loaded, catalog, serve=serve)
        await self.engine.start()
        return self.engine

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None

    async def settle(self, predicate, timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds (deliveries are asynchronous)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)
