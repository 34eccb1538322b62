"""The duplicate index never says "no" to a message it saw within the window."""

from engine.pipeline.duplicates import DuplicateIndex

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
    # Two windows later both filters have turned over.
    later = T0 + 3 * 3600 + 1
    assert not any(index.maybe_seen("EPIC^NORTH", f"C{i}", later) for i in range(100))


def test_entries_survive_at_least_one_window_whatever_the_rotations():
    for start in (0, 30, 99):  # the entry arrives early, midway, late in a filter's turn
        index = DuplicateIndex(window=100)
        index.remember("A", "first", T0)
        index.remember("A", "X", T0 + start)
        for age in range(0, 100, 5):
            index.remember("A", f"other{age}", T0 + start + age)  # traffic turns filters
            assert index.maybe_seen("A", "X", T0 + start + age), (start, age)


def test_memory_does_not_grow_with_traffic():
    index = DuplicateIndex(window=3600)
    before = len(index._current.bits) + len(index._previous.bits)
    for i in range(20000):
        index.remember("EPIC^NORTH", f"C{i}", T0)
    assert len(index._current.bits) + len(index._previous.bits) == before
