"""The duplicate index never says "no" to a message it saw within the window."""

from engine.duplicates import DuplicateIndex

T0 = 1_800_000_000.0


def test_no_false_no_within_the_window_and_forgetting_after_it():
    index = DuplicateIndex(window=3600)
    for i in range(5000):
        index.remember("EPIC^NORTH", f"C{i}", T0 + i * 0.1)
    now = T0 + 600
    assert all(index.maybe_seen("EPIC^NORTH", f"C{i}", now) for i in range(5000))
    # Another sender's identical control ids are (almost all) new.
    others = sum(index.maybe_seen("CERNER^SOUTH", f"C{i}", now) for i in range(5000))
    assert others < 50
    # Well after the window, both halves have rotated out.
    later = T0 + 2 * 3600 + 1
    assert not any(index.maybe_seen("EPIC^NORTH", f"C{i}", later) for i in range(100))


def test_entries_survive_at_least_one_window():
    index = DuplicateIndex(window=100)
    index.remember("A", "X", T0)
    for step in range(0, 100, 10):  # rotations happen, the entry stays for the window
        assert index.maybe_seen("A", "X", T0 + step)


def test_memory_does_not_grow_with_traffic():
    index = DuplicateIndex(window=3600)
    before = len(index._current.bits) + len(index._previous.bits)
    for i in range(20000):
        index.remember("EPIC^NORTH", f"C{i}", T0)
    assert len(index._current.bits) + len(index._previous.bits) == before
