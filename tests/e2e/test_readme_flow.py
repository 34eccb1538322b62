"""The README's first flow says what `conduit send` prints for its fixture; the shipped
engine must answer exactly that (the fixture asks for enhanced mode, so a commit ACK)."""

from __future__ import annotations

import re

from tests.e2e.support import REPO, Daemon

README = (REPO / "README.md").read_text()
SEND = re.compile(r"^conduit send --mllp 127\.0\.0\.1:2575 (\S+)\n#\s+\S+#1 (\S+) ([A-Z]{2})$",
                  re.MULTILINE)


def test_the_readme_shows_a_send_and_its_answer():
    assert SEND.search(README), "the first flow's `conduit send` line and its output"


async def test_the_first_flow_answers_what_the_readme_says(daemon: Daemon):
    fixture, control_id, code = SEND.search(README).groups()
    await daemon.start()
    sent = await daemon.cli("send", "--mllp", f"127.0.0.1:{daemon.mllp_port}", fixture)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.split() == [f"{fixture}#1", control_id, code]
    assert await daemon.stop() == 0
