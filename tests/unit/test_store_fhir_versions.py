"""engine/store/fhir_versions.py: the version each FHIR resource id is at, on SQLite and
PostgreSQL: 1 for an id never seen, then one more per update, a refused update given
back, and two OS processes updating one id never get the same version."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from engine.store import fhir_versions
from engine.store.database import open_database


def test_each_id_counts_its_own_versions_per_channel(db):
    take = fhir_versions.take
    assert fhir_versions.current(db, "fhir-in", "k1") is None
    assert [take(db, "fhir-in", "k1") for _ in range(3)] == [1, 2, 3]
    assert take(db, "fhir-in", "k2") == 1
    assert take(db, "other", "k1") == 1
    assert fhir_versions.current(db, "fhir-in", "k1") == 3


def test_a_version_given_back_is_taken_again_unless_a_later_one_was_taken(db):
    take = fhir_versions.take
    assert take(db, "c", "k") == 1
    fhir_versions.give_back(db, "c", "k", 1)  # a create refused: the id is new again
    assert fhir_versions.current(db, "c", "k") is None
    assert [take(db, "c", "k"), take(db, "c", "k")] == [1, 2]
    fhir_versions.give_back(db, "c", "k", 2)
    assert take(db, "c", "k") == 2
    assert take(db, "c", "k") == 3
    fhir_versions.give_back(db, "c", "k", 2)  # 3 was taken since: a gap, never a repeat
    assert take(db, "c", "k") == 4


_TAKER = textwrap.dedent("""
    import sys, time
    from engine.store import fhir_versions
    from engine.store.database import open_database
    db = open_database(sys.argv[1])
    fhir_versions.current(db, "fhir-in", "k")
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    print(" ".join(str(fhir_versions.take(db, "fhir-in", "k")) for _ in range(100)))
    db.dispose()
""")


@pytest.mark.postgres
def test_two_processes_on_one_postgresql_database_never_share_a_version(pg_url):
    open_database(pg_url).dispose()  # tables made before the race
    start = str(time.time() + 3.0)
    procs = [subprocess.Popen([sys.executable, "-c", _TAKER, pg_url, start],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    taken: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        taken += [int(n) for n in out.split()]
    assert sorted(taken) == list(range(1, 201))


def test_a_version_ahead_is_taken_and_the_count_goes_on_from_it(db):
    take = fhir_versions.take
    assert take(db, "c", "relayed", floor=7) == 7  # another server's version 7
    assert take(db, "c", "relayed") == 8
    assert take(db, "c", "relayed", floor=3) == 9  # behind (a client's echo): the next
