"""Value types that read the way analysts write them: `30s`, `5m`, `10MiB`, `10.0.0.0/8`."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*\Z", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
    "gb": 1000**3, "gib": 1024**3,
}


class Duration(float):
    """Seconds. YAML may say `500ms`, `30s`, `5m`, `1h`, `1d` or a plain number of seconds."""

    @classmethod
    def parse(cls, value: Any) -> Duration:
        if isinstance(value, bool):
            raise ValueError("expected a duration such as 30s or 5m")
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError("a duration cannot be negative")
            return cls(value)
        if isinstance(value, str):
            m = _DURATION.match(value)
            if m:
                return cls(float(m[1]) * _DURATION_UNITS[m[2]])
        raise ValueError(f"expected a duration such as 500ms, 30s, 5m or 1h, got {value!r}")


class Retention(Duration):
    """How long content is kept: a duration of at least a minute (`30d`, `12h`); shorter
    is surely a slip, content would go before anyone looked."""

    MIN = 60.0

    @classmethod
    def parse(cls, value: Any) -> Retention:
        try:
            seconds = Duration.parse(value)
        except ValueError:
            raise ValueError(f"expected a retention such as 30d, 12h or 90m, got {value!r}"
                             ) from None
        if seconds < cls.MIN:
            raise ValueError(f"a retention must be at least 1m (leave it out to keep content "
                             f"for ever), got {value!r}")
        return cls(seconds)


class ByteSize(int):
    """Bytes. YAML may say `64KiB`, `10MiB`, `1GB` or a plain number of bytes."""

    @classmethod
    def parse(cls, value: Any) -> ByteSize:
        if isinstance(value, bool):
            raise ValueError("expected a size such as 10MiB")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a size cannot be negative")
            return cls(value)
        if isinstance(value, str):
            m = _SIZE.match(value)
            if m:
                unit = m[2].lower() if m[2] else None
                return cls(int(float(m[1]) * _SIZE_UNITS[unit]))
        raise ValueError(f"expected a size such as 64KiB or 10MiB, got {value!r}")


class Network(str):
    """An IPv4 or IPv6 network in CIDR notation (`10.20.0.0/16`, `fd00::/8`); a bare
    address is a network of one. Kept as written, checked when read."""

    @classmethod
    def parse(cls, value: Any) -> Network:
        if isinstance(value, str):
            try:
                ipaddress.ip_network(value.strip())
                return cls(value.strip())
            except ValueError:
                try:
                    loose = ipaddress.ip_network(value.strip(), strict=False)
                except ValueError:
                    pass
                else:  # host bits set: say which network that address lies in
                    raise ValueError(f"expected a network's first address, such as {loose}, "
                                     f"got {value!r}") from None
        raise ValueError(f"expected a network such as 10.20.0.0/16 or fd00::/8, got {value!r}")


def dec_hook(type_: type, value: Any) -> Any:
    """msgspec decode hook for the types above."""
    if type_ is Duration:
        return Duration.parse(value)
    if type_ is Retention:
        return Retention.parse(value)
    if type_ is ByteSize:
        return ByteSize.parse(value)
    if type_ is Network:
        return Network.parse(value)
    raise NotImplementedError(f"no decoder for {type_.__name__}")
