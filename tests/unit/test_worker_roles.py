"""`--workers` as an operator writes it: a count, or how many workers take messages in
and how many deliver them; and each worker's role as it reads it from its supervisor."""

from __future__ import annotations

import pytest

from engine.supervisor import ENV, WorkerSlot, parse_workers


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
