"""Operations' view of a failing receiver, through the CLI only: the dead letter is
visible in `conduit queue list`, `conduit queue retry` puts it back, and `conduit audit
show` tells the whole story of the message afterwards."""

from __future__ import annotations

import re

from tests.e2e.support import (
    FHIR_DESTINATION,
    Adt,
    CountingFhirServer,
    Daemon,
    ack_code,
    eventually,
    exchange_one,
    mrns_in,
)
from tests.fhir_server import Answer


def queue_row(listing: str, destination: str) -> dict[str, int] | None:
    """The counts `conduit queue list` prints for one destination (None if absent)."""
    for line in listing.splitlines():
        cols = line.split()
        if cols and cols[0] == destination:
            depth, in_flight, retrying, dead = (int(c) for c in cols[1:5])
            return {"depth": depth, "in_flight": in_flight, "retrying": retrying, "dead": dead}
    return None


def why(listing: str, destination: str, kind: str) -> list[str]:
    """The `kind` ("retrying" or "dead") lines `conduit queue list` prints under one
    destination's counts, without the kind word."""
    found, under = [], False
    for line in listing.splitlines():
        if not line.startswith(" "):
            under = line.split()[:1] == [destination]
        elif under and line.split()[:1] == [kind]:
            found.append(line.strip()[len(kind):].strip())
    return found


def kinds(audit_show: str, destination: str | None = None) -> list[str]:
    """Event kinds in `conduit audit show` output, optionally only one destination's."""
    found = []
    for line in audit_show.splitlines():
        cols = line.split()
        if len(cols) < 4 or not cols[0].startswith("#"):
            continue
        if destination is None or (len(cols) > 4 and cols[4] == destination):
            found.append(cols[3])
    return found


async def send_admit(daemon: Daemon, msg: Adt) -> str:
    """Send one admission, check it is accepted, and return its message id (the name
    of its output file, the id operators read off data/out)."""
    assert ack_code(await exchange_one(daemon.mllp_port, msg.payload())) == "AA"
    await eventually(lambda: any(msg.mrn.encode() in p.read_bytes()
                                 for p in daemon.output_files()),
                     timeout=10, message=f"the output file of {msg.control_id}")
    [path] = [p for p in daemon.output_files() if msg.mrn.encode() in p.read_bytes()]
    return path.stem


async def test_dead_letter_then_retry_from_the_cli(daemon: Daemon,
                                                    fhir: CountingFhirServer) -> None:
    """400 is permanent: the message is dead-lettered at once, shown by `queue list`,
    requeued by `queue retry`, then delivered; the audit trail has every hop."""
    fhir.script.append(Answer(400))
    daemon.deliver_to(fhir.url)
    await daemon.start()
    msg = Adt(control_id="DL0001", mrn="E2EDL0001")
    message_id = await send_admit(daemon, msg)

    async def dead_on_fhir() -> bool:
        listing = await daemon.cli("queue", "list")
        row = queue_row(listing.stdout, FHIR_DESTINATION)
        return row is not None and row["dead"] == 1
    await eventually(dead_on_fhir, timeout=10, interval=0.3,
                     message=f"`conduit queue list` to show 1 dead on {FHIR_DESTINATION}")
    assert fhir.received == []
    # The listing says why under the counts: the newest dead letter and its reason.
    listing = (await daemon.cli("queue", "list")).stdout
    [dead_line] = why(listing, FHIR_DESTINATION, "dead")
    assert dead_line.startswith(f"{message_id}  newest of 1, 1 attempt(s): "
                                "HTTP 400 Bad Request"), listing
    assert msg.mrn not in listing
    # why, without the receiver's own words (they may quote the patient)
    dead = await daemon.cli("queue", "dead", "fhir-server")
    assert dead.returncode == 0, dead.stderr
    [row] = [line for line in dead.stdout.splitlines() if line.startswith(message_id)]
    assert row.split()[1:3] == ["1", "kept"]
    assert "HTTP 400 Bad Request" in row
    assert msg.mrn not in dead.stdout

    retry = await daemon.cli("queue", "retry", FHIR_DESTINATION)
    assert retry.returncode == 0, retry.stderr
    assert f"requeued 1 dead letter(s) on {FHIR_DESTINATION}" in retry.stdout

    await fhir.wait_for(1, timeout=10)
    assert msg.mrn in mrns_in(fhir.bodies())

    async def story_complete() -> bool:
        shown = await daemon.cli("audit", "show", "--message", message_id)
        return "sent" in kinds(shown.stdout, "fhir-server")
    await eventually(story_complete, timeout=10, interval=0.3,
                     message="the `sent` event of the retried delivery")
    shown = await daemon.cli("audit", "show", "--message", message_id)
    assert shown.returncode == 0, shown.stderr
    everything = kinds(shown.stdout)
    for kind in ("received", "parsed", "mapped", "queued", "acknowledged", "dead-lettered",
                 "requeued", "sent"):
        assert kind in everything, f"{kind} missing from:\n{shown.stdout}"
    assert kinds(shown.stdout, "fhir-server") == ["queued", "dead-lettered", "requeued",
                                                  "sent"], shown.stdout
    listing = await daemon.cli("queue", "list")
    row = queue_row(listing.stdout, FHIR_DESTINATION)
    assert row is None or row == {"depth": 0, "in_flight": 0, "retrying": 0, "dead": 0}

    # A busy receiver: 503 twice with Retry-After, then it takes the message.
    fhir.script.extend([Answer(503, headers={"Retry-After": "1"})] * 2)
    busy = Adt(control_id="DL0002", mrn="E2EDL0002", event="A08")
    busy_id = await send_admit(daemon, busy)
    await fhir.wait_for(2, timeout=20)
    assert busy.mrn in mrns_in(fhir.bodies()[1:])

    async def retried_then_sent() -> bool:
        shown = await daemon.cli("audit", "show", "--message", busy_id)
        return "sent" in kinds(shown.stdout, "fhir-server")
    await eventually(retried_then_sent, timeout=10, interval=0.3,
                     message="the `sent` event after two retries")
    shown = await daemon.cli("audit", "show", "--message", busy_id)
    assert kinds(shown.stdout, "fhir-server") == ["queued", "retried", "retried", "sent"], (
        shown.stdout)
    assert await daemon.stop() == 0


async def test_queue_list_says_why_a_destination_is_retrying(daemon: Daemon,
                                                             fhir: CountingFhirServer) -> None:
    """A busy receiver (503, come back in a minute): `queue list` shows the entry that
    waits, its attempt count, when it is tried next and the receiver's PHI-free reason."""
    fhir.script.append(Answer(503, headers={"Retry-After": "60"}))
    daemon.deliver_to(fhir.url)
    await daemon.start()
    msg = Adt(control_id="RT0001", mrn="E2ERT0001")
    message_id = await send_admit(daemon, msg)

    async def retrying_on_fhir() -> bool:
        row = queue_row((await daemon.cli("queue", "list")).stdout, FHIR_DESTINATION)
        return row is not None and row["retrying"] == 1
    await eventually(retrying_on_fhir, timeout=10, interval=0.3,
                     message=f"`conduit queue list` to show 1 retrying on {FHIR_DESTINATION}")
    listing = (await daemon.cli("queue", "list")).stdout
    [line] = why(listing, FHIR_DESTINATION, "retrying")
    assert re.fullmatch(rf"{message_id}  attempt 1, next in (5\d|60)s: HTTP 503 "
                        r"Service Unavailable.*", line), listing
    assert why(listing, FHIR_DESTINATION, "dead") == []
    assert msg.mrn not in listing
    assert await daemon.stop() == 0
