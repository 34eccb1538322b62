"""engine/store/control_numbers.py: X12 control numbers per trading partner, on SQLite
and PostgreSQL: a sequence per partner that survives a restart and wraps after nine
digits, and two OS processes on one database never get the same number."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from engine.store import control_numbers
from engine.store.database import open_database


def test_each_partner_has_its_own_sequence_from_one(db):
    assert control_numbers.last(db, "ZZ:PAYERX") is None
    assert [control_numbers.take(db, "ZZ:PAYERX") for _ in range(3)] == [1, 2, 3]
    assert control_numbers.take(db, "30:123456789") == 1
    assert control_numbers.take(db, "ZZ:PAYERX") == 4
    assert control_numbers.last(db, "ZZ:PAYERX") == 4
    assert control_numbers.last(db, "30:123456789") == 1


def test_the_sequence_continues_after_a_restart(db_url):
    first = open_database(db_url)
    numbers = control_numbers.ControlNumbers(first)
    assert [numbers.take("ZZ:PAYERX") for _ in range(5)] == [1, 2, 3, 4, 5]
    first.dispose()
    again = open_database(db_url)
    try:
        assert control_numbers.take(again, "ZZ:PAYERX") == 6
    finally:
        again.dispose()


def test_the_number_wraps_to_one_after_nine_digits(db):
    control_numbers.start_after(db, "ZZ:PAYERX", 999_999_998)
    assert control_numbers.take(db, "ZZ:PAYERX") == 999_999_999
    assert control_numbers.take(db, "ZZ:PAYERX") == 1
    assert control_numbers.take(db, "ZZ:PAYERX") == 2


def test_taking_over_from_another_engine_continues_after_its_last_number(db):
    control_numbers.start_after(db, "ZZ:PAYERX", 41_000)
    assert control_numbers.take(db, "ZZ:PAYERX") == 41_001
    control_numbers.take(db, "ZZ:PAYERX")
    control_numbers.start_after(db, "ZZ:PAYERX", 50_000)
    assert control_numbers.take(db, "ZZ:PAYERX") == 50_001
    with pytest.raises(ValueError):
        control_numbers.start_after(db, "ZZ:PAYERX", 1_000_000_000)


# Each process connects first, then waits for a common start time, so the two really
# take their numbers at the same time.
_TAKER = textwrap.dedent("""
    import sys, time
    from engine.store import control_numbers
    from engine.store.database import open_database
    db = open_database(sys.argv[1])
    control_numbers.last(db, "ZZ:PAYERX")
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    print(" ".join(str(control_numbers.take(db, "ZZ:PAYERX")) for _ in range(200)))
    db.dispose()
""")


def _race(url: str) -> list[list[int]]:
    start = str(time.time() + 3.0)
    procs = [subprocess.Popen([sys.executable, "-c", _TAKER, url, start],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    taken: list[list[int]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        taken.append([int(n) for n in out.split()])
    return taken


def _interleaved(taken: list[list[int]]) -> bool:
    """Neither process got one unbroken run: they really raced."""
    return all(max(t) - min(t) + 1 > len(t) for t in taken)


@pytest.mark.postgres
def test_two_processes_on_one_postgresql_database_never_share_a_number(pg_url):
    open_database(pg_url).dispose()  # tables made before the race
    taken = _race(pg_url)
    numbers = taken[0] + taken[1]
    assert len(numbers) == 400
    assert sorted(numbers) == list(range(1, 401))
    assert all(t == sorted(t) for t in taken)  # each process's own numbers go forward
    assert _interleaved(taken)


def test_two_processes_on_one_sqlite_file_never_share_a_number(tmp_path):
    url = f"sqlite:///{tmp_path / 'conduit.db'}"
    open_database(url).dispose()
    taken = _race(url)
    assert sorted(taken[0] + taken[1]) == list(range(1, 401))
