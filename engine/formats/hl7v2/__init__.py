"""HL7 version 2: a lazy tokenizer, escape handling, character sets, batches and
acknowledgements."""

from engine.formats.hl7v2.batch import Batch, BatchGroup, BatchHeader
from engine.formats.hl7v2.builder import MessageBuilder
from engine.formats.hl7v2.codec import Hl7v2Codec, decode_text
from engine.formats.hl7v2.escape import Delimiters, escape, unescape
from engine.formats.hl7v2.message import Hl7Message, Repetition, Segment

__all__ = [
    "Batch",
    "BatchGroup",
    "BatchHeader",
    "Delimiters",
    "Hl7Message",
    "Hl7v2Codec",
    "MessageBuilder",
    "Repetition",
    "Segment",
    "decode_text",
    "escape",
    "unescape",
]
