"""NCPDP SCRIPT XML: the codec (codec.py) over safe XML reading (xml.py), the parsed
message (message.py), what each message type requires (rules.py) and the Status/Error
answers (replies.py)."""

from engine.formats.ncpdp.codec import NcpdpCodec

__all__ = ["NcpdpCodec"]
