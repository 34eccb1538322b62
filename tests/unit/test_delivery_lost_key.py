"""A queued message whose content key is lost (a key folder not copied to a new host, a
KMS key destroyed too early): its destination worker dead-letters it with a reason that
names the key, and goes on delivering the rest in order, instead of its task dying."""

from __future__ import annotations

import pytest

from engine.events import Kind
from engine.message import Outbound, Sent
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.schema import messages
from tests.unit.test_pipeline_delivery import Scripted, env, until  # noqa: F401


class Batches(Scripted):
    """A destination that takes runs of messages at once (as the file destination)."""

    async def send_many(self, outbounds: list[Outbound]) -> list[Sent]:
        return [await self.send(o) for o in outbounds]


@pytest.mark.parametrize("destination", [Scripted, Batches])
async def test_a_message_under_a_lost_key_is_dead_lettered_and_the_rest_flow(
        env, tmp_path, destination):  # noqa: F811
    ring = env.vault.keys
    lost = ring.current
    [first] = await env.add(1)
    ring.provider.create()
    ring.refresh()
    rest = await env.add(3)
    (tmp_path / "keys" / f"{lost}.key").unlink()
    env.vault = Vault(KeyRing.load(tmp_path / "keys"))  # a process started after the loss
    dest = destination()
    env.worker(dest).start()
    await until(lambda: len(env.kinds(Kind.SENT)) == 3 and env.kinds(Kind.DEAD_LETTERED))
    assert dest.ids() == rest
    [(_, mid, detail)] = env.kinds(Kind.DEAD_LETTERED)
    assert mid == first and f"needs content key {lost}" in detail["reason"]
    assert env.counts() == (0, 0, 0, 1)


async def test_an_entry_whose_message_the_store_lacks_is_dead_lettered_saying_so(
        env):  # noqa: F811
    """A queue kept while its database went back to an earlier point (Redis streams
    beside a PostgreSQL restored from a backup) names messages the store no longer has."""
    [first, second] = await env.add(2)
    with env.db.begin() as conn:
        conn.execute(messages.delete().where(messages.c.id == first))
    dest = Scripted()
    env.worker(dest).start()
    await until(lambda: env.kinds(Kind.SENT) and env.kinds(Kind.DEAD_LETTERED))
    assert dest.ids() == [second]
    [(_, mid, detail)] = env.kinds(Kind.DEAD_LETTERED)
    assert mid == first and "not in the store" in detail["reason"]
