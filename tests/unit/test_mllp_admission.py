"""engine/connectors/admission.py and the MLLP source's connection settings: who
may connect, who gives way to a newcomer, and refusals logged at a bounded rate."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from engine.config.loader import load_channels
from engine.connectors.admission import (
    LISTENER_FULL,
    NOT_ALLOWED,
    PEER_LIMIT,
    Admission,
    peer_address,
    peer_key,
)
from engine.connectors.mllp import MllpSourceConfig
from engine.errors import ConfigErrors
from engine.log_limit import RateLimitedLog


class _Conn:
    def __init__(self, name: str, idle_since: float | None = 0.0) -> None:
        self.peer = name
        self.idle_since = idle_since
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _admission(**kw) -> Admission:
    return Admission("test:2575", RateLimitedLog(logging.getLogger("test")), **kw)


# --- settings ------------------------------------------------------------------------------


def _channel(project: Path, source: str) -> str:
    text = f"""\
        source:
          type: mllp
          port: 2575
          {source}
        destinations: [{{name: files, type: file, directory: out}}]
        """
    (project / "channels" / "c.yaml").write_text(textwrap.dedent(text))
    return "channels"


def test_the_defaults_hold_a_peer_to_a_tenth_of_the_listener_and_allow_anyone() -> None:
    config = MllpSourceConfig(port=2575)
    assert (config.max_connections, config.max_connections_per_peer) == (200, 20)
    assert config.allow == []


def test_allowed_networks_load_as_written(project: Path) -> None:
    [loaded] = load_channels(_channel(project, 'allow: [10.20.0.0/16, "fd00::/8", 192.0.2.7]'),
                             {})
    assert loaded.config.source.allow == ["10.20.0.0/16", "fd00::/8", "192.0.2.7"]


def test_a_bad_network_is_an_error_at_its_entry(project: Path) -> None:
    folder = _channel(project, "allow: [10.20.0.0/33, 10.20.1.5/16, intranet, 10.0.0.0/8]")
    with pytest.raises(ConfigErrors) as caught:
        load_channels(folder, {})
    assert [str(e) for e in caught.value.errors] == [
        "channels/c.yaml:4:11: source.allow[0]: expected a network such as 10.20.0.0/16 or "
        'fd00::/8, got text "10.20.0.0/33"',
        "channels/c.yaml:4:25: source.allow[1]: expected a network's first address, such as "
        '10.20.0.0/16, got text "10.20.1.5/16"',
        "channels/c.yaml:4:39: source.allow[2]: expected a network such as 10.20.0.0/16 or "
        'fd00::/8, got text "intranet"',
    ]


# --- peers -----------------------------------------------------------------------------------


def test_an_ipv6_peer_counts_by_its_64_and_a_mapped_ipv4_peer_as_ipv4() -> None:
    assert peer_key(peer_address("2001:db8:1:2::7"), "") == "2001:db8:1:2::/64"
    assert peer_key(peer_address("2001:db8:1:2:ffff::9"), "") == "2001:db8:1:2::/64"
    assert peer_key(peer_address("::ffff:10.1.2.3"), "") == "10.1.2.3"
    assert peer_key(peer_address("not-an-address"), "not-an-address") == "not-an-address"


def test_the_allow_list_takes_ipv4_and_ipv6_and_refuses_the_rest() -> None:
    gate = _admission(limit=10, per_peer=10, allow=["10.20.0.0/16", "fd00::/8"])
    assert gate.admit(_Conn("a"), "10.20.3.4")
    assert gate.admit(_Conn("b"), "::ffff:10.20.3.5")  # dual-stack listener
    assert gate.admit(_Conn("c"), "fd12::1")
    assert not gate.admit(_Conn("d"), "10.21.0.1")
    assert not gate.admit(_Conn("e"), "2001:db8::1")
    assert gate.refused == {NOT_ALLOWED: 2}


# --- limits ------------------------------------------------------------------------------------


def test_at_the_peer_limit_the_peers_own_longest_idle_connection_gives_way() -> None:
    gate = _admission(limit=10, per_peer=2)
    other = _Conn("other", idle_since=0.0)  # idle longest, but another peer's
    old, recent = _Conn("old", idle_since=1.0), _Conn("recent", idle_since=5.0)
    assert gate.admit(other, "10.0.0.9")
    assert gate.admit(old, "10.0.0.1") and gate.admit(recent, "10.0.0.1")
    assert gate.admit(_Conn("new"), "10.0.0.1")
    assert old.closed and not recent.closed and not other.closed
    assert old not in gate.members and gate.evicted == 1


def test_a_peer_whose_connections_are_all_mid_message_is_refused() -> None:
    gate = _admission(limit=10, per_peer=2)
    busy = [_Conn(f"busy{i}", idle_since=None) for i in range(2)]
    for conn in busy:
        assert gate.admit(conn, "10.0.0.1")
    assert not gate.admit(_Conn("new"), "10.0.0.1")
    assert gate.refused == {PEER_LIMIT: 1} and not any(c.closed for c in busy)


def test_a_full_listener_evicts_the_longest_idle_and_refuses_only_when_all_are_busy() -> None:
    gate = _admission(limit=3, per_peer=3)
    conns = [_Conn("mid", None), _Conn("idle-long", 1.0), _Conn("idle-short", 2.0)]
    for i, conn in enumerate(conns):
        assert gate.admit(conn, f"10.0.0.{i}")
    newcomer = _Conn("new", None)
    assert gate.admit(newcomer, "10.0.0.9")
    assert [c.peer for c in conns if c.closed] == ["idle-long"]
    conns[2].idle_since = None
    assert not gate.admit(_Conn("late"), "10.0.0.8")
    assert gate.refused == {LISTENER_FULL: 1} and len(gate.members) == 3


def test_leaving_frees_the_place_and_is_harmless_twice() -> None:
    gate = _admission(limit=1, per_peer=1)
    conn = _Conn("a", None)
    assert gate.admit(conn, "10.0.0.1")
    gate.leave(conn)
    gate.leave(conn)
    assert gate.admit(_Conn("b", None), "10.0.0.1")


# --- bounded logging ---------------------------------------------------------------------------


def test_one_line_per_key_per_interval_with_the_count_held_back(caplog) -> None:
    now = [0.0]
    notices = RateLimitedLog(logging.getLogger("test.rate"), every=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "test.rate")
    for _ in range(5):
        notices.log(logging.WARNING, ("peer limit", "10.0.0.1"), "refusing %s", "10.0.0.1")
    notices.log(logging.WARNING, ("peer limit", "10.0.0.2"), "refusing %s", "10.0.0.2")
    now[0] = 61.0
    notices.log(logging.WARNING, ("peer limit", "10.0.0.1"), "refusing %s", "10.0.0.1")
    assert caplog.messages == [
        "refusing 10.0.0.1", "refusing 10.0.0.2",
        "refusing 10.0.0.1 (4 more like it in the last 60 s not logged)",
    ]


def test_many_distinct_keys_share_one_line_beyond_the_cap(caplog) -> None:
    notices = RateLimitedLog(logging.getLogger("test.cap"), every=60, max_keys=3,
                             clock=lambda: 0.0)
    caplog.set_level(logging.INFO, "test.cap")
    for i in range(100):
        notices.log(logging.WARNING, i, "refusing %d", i)
    assert caplog.messages == ["refusing 0", "refusing 1", "refusing 2", "refusing 3"]
