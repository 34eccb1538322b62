"""Logging set-up: text for people, JSON lines for log shippers.

Log lines name channels, destinations, message ids and codes; they never carry message
content or patient identifiers (events.describe builds them from ids only).
"""

from __future__ import annotations

import logging
import sys
import time

import msgspec

from engine.config.schema import LogConfig
from engine.supervisor import WorkerSlot


class _JsonFormatter(logging.Formatter):
    def __init__(self, worker: int | None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._worker is not None:
            entry["worker"] = self._worker
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def setup(config: LogConfig) -> None:
    handler: logging.Handler = (
        logging.FileHandler(config.file) if config.file else logging.StreamHandler(sys.stderr)
    )
    # In a group (`conduit run --workers`), which worker wrote the line.
    slot = WorkerSlot.from_env()
    worker = slot.index if slot is not None else None
    if config.format == "json":
        handler.setFormatter(_JsonFormatter(worker))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s " + ("" if worker is None else f"worker {worker} ")
            + "%(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    # aiohttp's access log would print request lines; ours says what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    global _handler
    _handler = handler


_handler: logging.Handler | None = None  # set up: where the log goes


def fatal(text: str) -> None:
    """Say why the process stops: on the terminal as a plain line, and in the log as
    well once the log is set up and is JSON or a file, so a log shipper sees the reason
    as one more JSON line and a log file's reader sees it at all."""
    to_file = isinstance(_handler, logging.FileHandler)
    to_log = _handler is not None and (
        to_file or isinstance(_handler.formatter, _JsonFormatter))
    if to_log:
        logging.getLogger("conduit").critical("%s", text)
    if to_file or not to_log:
        print(text, file=sys.stderr)
