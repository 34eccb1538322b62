"""Who may hold a connection to a listener (MLLP, and the HTTP sources and status page).

Three rules, checked as a connection arrives: its peer must be in the allowed networks
(when the source names any); a peer may hold `per_peer` connections; the listener holds
`limit`. A limit reached does not lock senders out: the newcomer takes the place of the
longest-idle connection (the peer's own at the per-peer limit, anyone's at the
listener's), so sockets someone opened and forgot cannot keep a real sender away for as
long as they stay. A connection in the middle of a message (a frame arriving, a reply
owed) is never closed for a newcomer, since that would cut the message or lose its
reply; only when every candidate is mid-message is the newcomer refused. Refusals and
evictions are counted for the status page and logged at a bounded rate, by address only.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol

from engine.log_limit import RateLimitedLog

NOT_ALLOWED = "not allowed"
PEER_LIMIT = "peer limit"
LISTENER_FULL = "listener full"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Occupant(Protocol):
    """A connection as admission sees it."""

    peer: str  # host:port, for log lines

    @property
    def idle_since(self) -> float | None:
        """When it last finished a message; None while one is under way."""

    def close(self) -> None: ...


def peer_address(host: str) -> Address | None:
    """The peer's IP address; an IPv4 peer of a dual-stack listener as plain IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def peer_key(address: Address | None, host: str) -> str:
    """What the per-peer limit counts by: the address, or for IPv6 its /64, which one
    site or one subscriber usually holds whole."""
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((address, 64), strict=False).compressed
    return str(address) if address is not None else host


class Admission:
    """Admits, evicts and refuses connections to one listener, and counts them."""

    def __init__(self, name: str, notices: RateLimitedLog, *, limit: int, per_peer: int,
                 allow: Sequence[str] = (), kind: str = "mllp") -> None:
        self.name = name  # the listener's address, for log lines
        self.kind = kind  # what it speaks, for log lines
        self.limit = limit
        self.per_peer = per_peer
        self.networks = [ipaddress.ip_network(n) for n in allow]
        self.members: set[Occupant] = set()
        self.refused: Counter[str] = Counter()
        self.evicted = 0
        self._notices = notices
        self._peers: dict[Occupant, str] = {}
        self._by_peer: defaultdict[str, set[Occupant]] = defaultdict(set)

    def admit(self, conn: Occupant, host: str) -> bool:
        """Whether `conn`, from `host`, may stay; closes an idle connection to make room
        when a limit is reached. A refused connection is for the caller to close."""
        address = peer_address(host)
        key = peer_key(address, host)
        if self.networks and not self._allowed(address):
            return self._refuse(conn, key, NOT_ALLOWED, "outside the allowed networks")
        mine = self._by_peer.get(key, set())
        if len(mine) >= self.per_peer and not self._evict(mine, conn):
            return self._refuse(conn, key, PEER_LIMIT, f"it holds its limit of "
                                f"{self.per_peer} connections, each mid-message")
        if len(self.members) >= self.limit and not self._evict(self.members, conn):
            return self._refuse(conn, key, LISTENER_FULL, f"all {self.limit} connections "
                                "are mid-message")
        self.members.add(conn)
        self._peers[conn] = key
        self._by_peer[key].add(conn)
        return True

    def leave(self, conn: Occupant) -> None:
        """Forget `conn` (closed, or evicted); harmless for one never admitted."""
        key = self._peers.pop(conn, None)
        if key is None:
            return
        self.members.discard(conn)
        mine = self._by_peer[key]
        mine.discard(conn)
        if not mine:
            del self._by_peer[key]

    def _allowed(self, address: Address | None) -> bool:
        return address is not None and any(address in n for n in self.networks)

    def _evict(self, candidates: Iterable[Occupant], newcomer: Occupant) -> bool:
        """Close the longest-idle of `candidates`; False when each is mid-message."""
        idle = [(since, c) for c in candidates if (since := c.idle_since) is not None]
        if not idle:
            return False
        _, victim = min(idle, key=lambda pair: pair[0])
        key = self._peers[victim]
        self.leave(victim)
        victim.close()
        self.evicted += 1
        self._notices.log(logging.INFO, ("evicted", key), "%s %s: closing idle %s to admit "
                          "%s", self.kind, self.name, victim.peer, newcomer.peer)
        return True

    def _refuse(self, conn: Occupant, key: str, reason: str, why: str) -> bool:
        self.refused[reason] += 1
        self._notices.log(logging.WARNING, (reason, key), "%s %s: refusing %s: %s",
                          self.kind, self.name, conn.peer, why)
        return False
