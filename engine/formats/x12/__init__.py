"""ASC X12 5010: the codec (codec.py) over the tokenizer (tokens.py), the envelope
checks (interchange.py), the 999/TA1 (ack.py) and the parsed set (message.py)."""

from engine.formats.x12.codec import X12Codec

__all__ = ["X12Codec"]
