"""`conduit retention run` on an embedded store: prunes what is past the channel's
retention, keeps what is queued, and says so; a second run finds nothing more."""

from __future__ import annotations

import asyncio
import textwrap

from engine.cli import main
from engine.store.database import open_database
from engine.store.retention import pruned
from tests.integration.test_retention import Store


async def _seed(tmp_path) -> tuple[list[str], str, str]:
    st = Store(f"sqlite:///{tmp_path / 'data' / 'conduit.db'}", tmp_path / "data" / "keys",
               "sql")
    st.writer.start()
    try:
        old = [await st.add(40, queued=False), await st.add(31, queued=False)]
        queued = await st.add(60)
        young = await st.add(2, queued=False)
    finally:
        await st.writer.close()
        st.db.dispose()
    return old, queued, young


def test_retention_run_prunes_and_reports(tmp_path, capsys):
    old, queued, young = asyncio.run(_seed(tmp_path))
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(textwrap.dedent(f"""\
        source: {{type: mllp, port: 2575}}
        retention: 30d
        destinations:
          - {{name: ehr, type: file, directory: "{tmp_path / 'out'}"}}
        """))
    conf = tmp_path / "conduit.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nchannels_dir: {tmp_path / 'channels'}\n"
                    f"web: {{port: 0}}\n")

    assert main(["--conf", str(conf), "retention", "run"]) == 0
    out = capsys.readouterr().out
    assert "adt: retention 30d" in out
    assert "2 message(s) pruned (2 output(s), 0 receiver answer(s)); 1 kept while queued" in out

    db = open_database(f"sqlite:///{tmp_path / 'data' / 'conduit.db'}")
    assert [pruned(db, m) for m in (*old, queued, young)] == [True, True, False, False]
    db.dispose()

    assert main(["--conf", str(conf), "retention", "run"]) == 0
    assert "0 message(s) pruned" in capsys.readouterr().out

    # The audit trail of a pruned message still shows, and says where its content went.
    assert main(["--conf", str(conf), "audit", "show", "--message", old[0]]) == 0
    shown = capsys.readouterr().out
    assert "received" in shown and "content: pruned under the channel's retention" in shown
    assert main(["--conf", str(conf), "audit", "show", "--message", young]) == 0
    assert "pruned" not in capsys.readouterr().out
