"""Change control with `conduit run` and the CLI as an operator uses them: the first start
records revision 1; a deploy made by an analyst waits for another admin's approval, then
the running engine follows it without a restart; the engine refuses to start on files
that differ from the live revision unless told `--deploy`; a rollback goes back."""

from __future__ import annotations

import textwrap
from pathlib import Path

import aiohttp

from engine.security.roles import Role
from engine.security.users import UserStore
from engine.store.database import default_url, open_database
from tests.e2e.support import Adt, Daemon, ack_code, eventually, exchange_one
from tests.harness import written


def write_channel(root: Path, out: str) -> None:
    (root / "channels" / "adt.yaml").write_text(textwrap.dedent(f"""\
        source:
          type: mllp
          port: ${{CONDUIT_MLLP_PORT}}
        destinations:
          - {{name: files, type: file, directory: "{root / out}"}}
        """))


def setup(daemon: Daemon) -> Path:
    root = daemon.tmp_path
    (root / "channels").mkdir()
    (root / "mappings").mkdir()
    write_channel(root, "out-1")
    conf = root / "conduit.yaml"
    conf.write_text(f"data_dir: {daemon.data_dir}\nchannels_dir: {root / 'channels'}\n"
                    f"mappings_dir: {root / 'mappings'}\n"
                    "web:\n  host: 127.0.0.1\n  port: ${CONDUIT_WEB_PORT}\n"
                    "change_control: {approvals: 1}\n")
    daemon.env["CONDUIT_CONF"] = str(conf)
    return root


def tokens(daemon: Daemon, roles: dict[str, Role]) -> dict[str, str]:
    """Users and their API tokens, as `conduit users add/token` makes them (written
    straight to the store: each CLI start costs seconds on a loaded machine)."""
    daemon.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(default_url(daemon.data_dir))
    try:
        users = UserStore(db)
        for name, role in roles.items():
            users.add(name, role)
        return {name: users.new_token(name) for name in roles}
    finally:
        db.dispose()


async def as_user(daemon: Daemon, secret: str, *args: str):
    daemon.env["CONDUIT_TOKEN"] = secret
    try:
        return await daemon.cli(*args)
    finally:
        del daemon.env["CONDUIT_TOKEN"]


async def deliver(daemon: Daemon, root: Path, control_id: str, folder: str) -> None:
    """One admission, acknowledged, and written into `folder` (and no other)."""
    msg = Adt(control_id=control_id, mrn=f"CC{control_id}")
    assert ack_code(await exchange_one(daemon.mllp_port, msg.payload())) == "AA"

    def landed() -> list[str]:
        return [p.parent.name for folder in root.glob("out-*") for p in written(folder)
                if msg.mrn.encode() in p.read_bytes()]

    await eventually(lambda: landed() != [], timeout=15)
    assert landed() == [folder]


async def running_revision(daemon: Daemon, secret: str) -> int | None:
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{daemon.web_port}/api/revisions",
            headers={"Authorization": f"Bearer {secret}"}) as resp:
        return (await resp.json())["running"]


async def test_deploy_approve_follow_refuse_and_roll_back(tmp_path):
    daemon = Daemon(tmp_path)
    root = setup(daemon)
    try:
        made = tokens(daemon, {"ann": Role.ANALYST, "bob": Role.ADMIN,
                               "ehr": Role.INTEGRATION})
        ann, bob = made["ann"], made["bob"]
        await daemon.start()
        assert "revision 1" in daemon.logs()  # the bootstrap says so
        await deliver(daemon, root, "M1", "out-1")

        write_channel(root, "out-2")
        shown = await daemon.cli("deploy", "--diff")
        assert shown.returncode == 0 and f'+  - {{name: files, type: file, directory: ' \
            f'"{root / "out-2"}"}}' in shown.stdout
        anonymous = await daemon.cli("deploy", "--reason", "move output")
        assert anonymous.returncode == 2 and "CONDUIT_TOKEN" in anonymous.stderr
        # a sending system's credential is no identity for configuration changes
        sender = await as_user(daemon, made["ehr"], "deploy", "--reason", "move output")
        assert sender.returncode == 2 and "integration role" in sender.stderr
        made = await as_user(daemon, ann, "deploy", "--reason", "move output")
        assert made.returncode == 0, made.stderr
        assert "revision 2 waits for approval" in made.stdout
        again = await as_user(daemon, ann, "deploy", "--reason", "once more")
        assert "revision 2 has these files and waits" in again.stdout, again.stderr
        await deliver(daemon, root, "M2", "out-1")  # pending: not live yet

        own = await as_user(daemon, ann, "deploy", "approve", "2")
        assert own.returncode == 2 and "admin role" in own.stderr
        approved = await as_user(daemon, bob, "deploy", "approve", "2")
        assert approved.returncode == 0 and "live" in approved.stdout, approved.stderr
        await eventually(lambda: "running revision 2" in daemon.logs(), timeout=15)
        assert await running_revision(daemon, bob) == 2
        await deliver(daemon, root, "M3", "out-2")
        assert await daemon.stop() == 0

        write_channel(root, "out-3")
        refused = await daemon.cli("run", timeout=60)
        assert refused.returncode == 2
        assert "adt.yaml" in refused.stderr and "conduit deploy" in refused.stderr

        await daemon.start("--deploy")
        assert "revision 3" in daemon.logs(daemon.runs) and "waits for approval" in \
            daemon.logs(daemon.runs)
        await deliver(daemon, root, "M4", "out-2")  # still the live revision 2

        back = await as_user(daemon, ann, "rollback", "1", "--reason", "back to the start")
        assert back.returncode == 0 and "revision 4 waits" in back.stdout, back.stderr
        assert (await as_user(daemon, bob, "deploy", "approve", "4")).returncode == 0
        await eventually(lambda: "running revision 4" in daemon.logs(), timeout=15)
        await deliver(daemon, root, "M5", "out-1")

        listing = await daemon.cli("revisions", "list")
        states = [line.split()[:2] for line in listing.stdout.splitlines()]
        assert states == [["1", "superseded"], ["2", "superseded"], ["3", "superseded"],
                          ["4", "live"]]
        assert "rollback to 1" in listing.stdout
        verified = await daemon.cli("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert await daemon.stop() == 0
    finally:
        daemon.kill_leftover()

