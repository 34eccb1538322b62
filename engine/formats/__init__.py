"""Codecs: one package or module per standard. Bytes in, parsed message and routing
fields out, and acknowledgements both ways. Codecs know standards, never transports."""
