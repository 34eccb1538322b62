"""engine/store/claims.py and the duplicate index's store question: on SQLite, which has
no statistics to go by, both find earlier copies through the control id's index, so their
cost stays a few rows however many messages the channel holds (through the channel's
indexes it grew with them: a 2-worker soak's rate fell by half within four minutes)."""

from __future__ import annotations

from engine.store.claims import _TAKEN
from engine.store.database import open_database
from engine.store.messages import _TAKEN_WITH_CONTROL_IDS


def plan(db, query, params) -> list[str]:
    with db.connect() as conn:
        state = query.compile(dialect=conn.dialect).construct_expanded_state(params)
        values = tuple(state.parameters[k] for k in state.positiontup)
        return [row[3] for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + state.statement, values)]


def test_both_questions_search_by_control_id_on_sqlite(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'conduit.db'}")
    try:
        claims = plan(db, _TAKEN, {"control_ids": ["C1", "C2"], "channels": ["adt", "lab"],
                                   "floor": "0"})
        resends = plan(db, _TAKEN_WITH_CONTROL_IDS, {
            "control_ids": ["C1", "C2"], "channels": ["adt"], "floor": "0", "limit": 100})
    finally:
        db.dispose()
    for found in (claims, resends):
        assert found == ["SEARCH messages USING INDEX ix_messages_control_id (control_id=?)"]
