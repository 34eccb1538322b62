"""`--workers` as an operator writes it: a count, or how many workers take messages in
and how many deliver them; and each worker's role as it reads it from its supervisor."""

from __future__ import annotations

import pytest

from engine.supervisor import ENV, WorkerSlot, keep_to_own_cpu, parse_workers


def test_a_count_is_that_many_workers_doing_everything() -> None:
    assert parse_workers("1") == ("all",)
    assert parse_workers("3") == ("all", "all", "all")


def test_a_split_lists_ingest_workers_first_so_worker_0_polls_folders() -> None:
    assert parse_workers("deliver=2,ingest=1") == ("ingest", "deliver", "deliver")
    assert parse_workers("all=1, deliver=1") == ("all", "deliver")


@pytest.mark.parametrize("text", ["0", "ingest=0", "ingest", "send=1", "ingest=x", ""])
def test_what_names_no_worker_or_no_known_role_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_workers(text)


def test_each_worker_reads_its_role_and_an_older_supervisor_means_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1/2/deliver/1")
    slot = WorkerSlot.from_env()
    assert slot == WorkerSlot(1, 2, "deliver", 1)
    assert slot is not None and slot.delivers and not slot.takes_in and not slot.primary
    # the one ingest worker of ingest=1,deliver=M takes messages in alone
    assert not slot.intake_shared and WorkerSlot(0, 3, "ingest", 2).intake_shared
    monkeypatch.setenv(ENV, "0/2")
    slot = WorkerSlot.from_env()
    assert slot is not None and slot.role == "all" and slot.takes_in and slot.delivers
    assert slot.intake_shared  # an older supervisor's two workers both take in


class _Affinity:
    """What the OS would say and be told about this process's CPUs."""

    def __init__(self, allowed: set[int]) -> None:
        self.allowed = allowed
        self.set_to: set[int] | None = None

    def get(self, pid: int) -> set[int]:
        return set(self.allowed)

    def set(self, pid: int, cpus: set[int]) -> None:
        self.set_to = set(cpus)


@pytest.mark.parametrize(("allowed", "slots", "expected"), [
    # the CPUs the group may use, in order, one worker each
    ({2, 5, 7}, [WorkerSlot(0, 3), WorkerSlot(1, 3), WorkerSlot(2, 3)], [2, 5, 7]),
    ({0, 1, 2, 3}, [WorkerSlot(0, 2, "ingest", 1), WorkerSlot(1, 2, "deliver", 1)], [0, 1]),
    # more workers than CPUs, or a group of one: the workers stay where the system puts them
    ({0, 1}, [WorkerSlot(0, 4), WorkerSlot(3, 4)], [None, None]),
    ({3}, [WorkerSlot(0, 2), WorkerSlot(1, 2)], [None, None]),
    ({0, 1}, [WorkerSlot(0, 1, "ingest")], [None]),
])
def test_each_worker_of_a_group_keeps_to_its_own_cpu(
        monkeypatch: pytest.MonkeyPatch, allowed: set[int], slots: list[WorkerSlot],
        expected: list[int | None]) -> None:
    for slot, cpu in zip(slots, expected, strict=True):
        affinity = _Affinity(allowed)
        monkeypatch.setattr("os.sched_getaffinity", affinity.get)
        monkeypatch.setattr("os.sched_setaffinity", affinity.set)
        assert keep_to_own_cpu(slot) == cpu
        assert affinity.set_to == (None if cpu is None else {cpu})


def test_a_worker_the_os_will_not_pin_runs_where_it_is_put(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, cpus: set[int]) -> None:
        raise PermissionError("not allowed here")

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr("os.sched_setaffinity", refuse)
    assert keep_to_own_cpu(WorkerSlot(1, 2)) is None
