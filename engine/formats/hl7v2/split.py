"""Splitting a file of HL7v2 messages into messages.

Files hold one or many messages with \\r, \\n or \\r\\n segment endings; each message
starts at an MSH segment. Batch envelope segments (FHS, BHS, BTS, FTS) are dropped here:
this is for tools that only want the messages (`conduit send`); reading the envelope,
checking its counts and acknowledging by the batch rules is batch.py's job.
"""

from __future__ import annotations

import re

_LINES = re.compile(r"\r\n|\r|\n")
_ENVELOPE = ("FHS", "BHS", "BTS", "FTS")


def split_messages(text: str) -> list[str]:
    """Messages in `text`, each with standard \\r segment terminators."""
    messages: list[list[str]] = []
    for line in _LINES.split(text.lstrip("\ufeff")):
        if not line.strip() or line[:3] in _ENVELOPE:
            continue
        if line.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return ["\r".join(segments) + "\r" for segments in messages]
