"""Table definitions. Only `messages.content`, `outputs.content` and
`dead_letter_answers.content` hold PHI, sealed with AES-256-GCM; every other column is
metadata, ids, hashes or keyed pseudonyms."""

from __future__ import annotations

import sqlalchemy as sa

from engine.events import Kind

metadata = sa.MetaData()

# SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for growth.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("standard", sa.String(16), nullable=False, server_default=""),
    sa.Column("message_type", sa.String(40), nullable=False, server_default=""),
    sa.Column("control_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("sender", sa.String(200), nullable=False, server_default=""),
    sa.Column("peer", sa.String(80), nullable=False, server_default=""),
    sa.Column("patient", sa.String(32)),  # keyed pseudonym, never the identifier
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("error", sa.Text),  # PHI-free reason for error / rejected status
    sa.Index("ix_messages_channel_id", "channel", "id"),
    sa.Index("ix_messages_channel_status_id", "channel", "status", "id"),
    sa.Index("ix_messages_channel_type_id", "channel", "message_type", "id"),
    sa.Index("ix_messages_status_id", "status", "id"),
    sa.Index("ix_messages_control_id", "control_id"),
    sa.Index("ix_messages_patient", "patient", "id"),
    sa.Index("ix_messages_type", "message_type", "id"),
)

outputs = sa.Table(
    "outputs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("mapping", sa.String(80), nullable=False),  # name@version that produced it
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Index("ix_outputs_message", "message_id"),
)

queue = sa.Table(
    "queue",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("destination", sa.String(130), nullable=False),  # "channel/destination"
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("output_id", sa.String(26)),  # None: deliver the raw message
    sa.Column("state", sa.String(10), nullable=False),  # ready | leased | dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("available_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(40)),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_queue_destination", "destination", "state", "id"),
    sa.Index("ix_queue_message", "message_id"),
)

# Engine processes that may hold queue leases, with the database's own clock (epoch
# seconds, so hosts with skewed clocks agree) at their last heartbeat: the leases of an
# owner that stopped beating are taken over by the next process that leases their
# destination (engine.queue.owners). A table of its own so existing databases gain it.
queue_owners = sa.Table(
    "queue_owners",
    metadata,
    sa.Column("owner", sa.String(40), primary_key=True),  # queue.lease_owner
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

# Each owner's connected peers per channel source ({"channel": ["host:port", ...]}, JSON),
# written with its heartbeat when they change, so the status page of whichever process
# serves it lists every process's senders. Addresses only, never message content.
owner_peers = sa.Table(
    "owner_peers",
    metadata,
    sa.Column("owner", sa.String(40), primary_key=True),  # queue_owners.owner
    sa.Column("peers", sa.Text, nullable=False),
)

# Duties done once for a whole cluster (sending alerts), each held by one process at a
# time until `until` (the database's clock) unless renewed (engine.ops.leader).
cluster_leases = sa.Table(
    "cluster_leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(40), nullable=False),  # a queue owner id
    sa.Column("until", sa.Float, nullable=False),
)

# The last notification sent for each alert that holds (engine.ops.alerts.told): what the
# on-call has been told, so a process that starts speaking for the cluster sends what
# changed while nobody spoke, and nothing twice. Names and numbers only, never PHI.
alerts_told = sa.Table(
    "alerts_told",
    metadata,
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("notification", sa.Text, nullable=False),  # JSON
)

# What a receiver answered to a delivery that ended in the dead-letter queue (a FHIR
# OperationOutcome may quote the patient back): sealed like message content, under its
# own id. A table of its own, not queue columns, so existing databases gain it on start
# (create_all adds tables, never columns) and it outlives the entry's requeue or discard.
dead_letter_answers = sa.Table(
    "dead_letter_answers",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),  # also the seal's associated data
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("destination", sa.String(130), nullable=False),  # "channel/destination"
    sa.Column("queue_id", sa.BigInteger, nullable=False),  # the dead queue entry
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("code", sa.String(16), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),  # PHI-free summary
    sa.Column("content_type", sa.String(64), nullable=False, server_default=""),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Index("ix_dead_letter_answers_message", "message_id", "id"),
    sa.Index("ix_dead_letter_answers_queue", "queue_id"),
)

# The hops of a message that always carry the patient pseudonym stored on its row
# (engine.channel takes the message on with it, engine.pipeline.delivery reads it from the
# row). A patient's events of these kinds are found through messages.patient and the
# audit's message index (engine.store.disclosures, engine.store.search), so the audit's
# patient index leaves them out: with them it was a third of the pages a commit wrote, a
# message's events reaching it at a random place in three commits (docs/performance.md).
# Written out as SQL text, which the index and the queries that use it must share word for
# word (SQLite matches a partial index's condition to a query's literally).
MESSAGE_HOPS = (Kind.RECEIVED.value, Kind.PARSED.value, Kind.MAPPED.value, Kind.QUEUED.value,
                Kind.SENT.value, Kind.ACKNOWLEDGED.value)
NOT_A_MESSAGE_HOP = "kind NOT IN (" + ", ".join(f"'{k}'" for k in MESSAGE_HOPS) + ")"

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # the event's id
    sa.Column("at_us", sa.BigInteger, nullable=False),  # microseconds since the epoch
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64)),
    sa.Column("destination", sa.String(64)),
    sa.Column("message_id", sa.String(26)),
    sa.Column("peer", sa.String(200)),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("patient", sa.String(32)),
    sa.Column("detail", sa.Text, nullable=False),  # JSON, PHI-free
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_message", "message_id"),
    sa.Index("ix_audit_channel_time", "channel", "at_us"),
    sa.Index("ix_audit_patient_other", "patient", sqlite_where=sa.text(NOT_A_MESSAGE_HOP),
             postgresql_where=sa.text(NOT_A_MESSAGE_HOP)),
    sa.Index("ix_audit_actor", "actor", "at_us"),
)

# The chain's head, moved in the same transaction as every append, so that deleting the
# newest audit rows (which leaves an intact but shorter chain) is still detected.
# audit_head's rows: 1 the chain's head (seq, hash of the last event), SEAL_ROW its
# seal, an HMAC of that head under the audit key (engine.store.audit); UNSEALED until an
# engine of the version that seals has written an event.
SEAL_ROW = 2
UNSEALED = "unsealed"
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Event counts per (kind, channel, destination) up to audit event `through`, so the
# status page's counts survive a restart without counting the whole trail at each start:
# only the events after the mark are counted and added (engine.store.totals).
audit_totals = sa.Table(
    "audit_totals",
    metadata,
    sa.Column("kind", sa.String(24), primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),  # "" for none
    sa.Column("destination", sa.String(64), primary_key=True),  # "" for none
    sa.Column("n", sa.BigInteger, nullable=False),
)

audit_totals_mark = sa.Table(
    "audit_totals_mark",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("through", sa.BigInteger, nullable=False),  # the last event counted
)

# Each channel's state as an operator's last action left it (engine.group_controls), so
# a process joining a group (a restarted worker, another host) starts the channel paused
# or stopped as the group runs it. A table of its own so existing databases gain it.
channel_controls = sa.Table(
    "channel_controls",
    metadata,
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # started | paused | stopped | error
    sa.Column("at", sa.Float, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), unique=True),  # SHA-256 of the token; never the token
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("token_created_at", sa.Float),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the cookie value
    sa.Column("user", sa.String(64), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# X12 control numbers the engine gives each trading partner (ISA13/GS06 of what it
# sends): the last one taken, moved by one atomic statement (engine.store.control_numbers)
# so two processes on one database never send a partner the same number.
x12_control_numbers = sa.Table(
    "x12_control_numbers",
    metadata,
    sa.Column("partner", sa.String(64), primary_key=True),  # the receiver, "ZZ:PAYERX"
    sa.Column("last", sa.BigInteger, nullable=False),
)

# The version each resource id is at on a FHIR source (engine.store.fhir_versions): the
# server assigns meta.versionId, so a second PUT of an id is an update (version 2). Keyed
# by channel and the keyed pseudonym of "Type/id" (ids may be identifiers), never the id.
fhir_versions = sa.Table(
    "fhir_versions",
    metadata,
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("resource", sa.String(32), primary_key=True),  # pseudonym of "Patient/123"
    sa.Column("version", sa.BigInteger, nullable=False),
)

# Each X12 transaction set the engine sent a partner, and what the partner's 999 (or TA1)
# said of it: found again by the partner's id with AK102 (our GS06) and AK202 (our
# ST02). Codes only in `detail` (IK5/AK9 codes, IK3/IK4 positions), never data.
x12_sent = sa.Table(
    "x12_sent",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("partner", sa.String(64), nullable=False),
    sa.Column("interchange", sa.String(9), nullable=False),  # ISA13
    sa.Column("group_control", sa.String(9), nullable=False),  # GS06
    sa.Column("set_control", sa.String(9), nullable=False),  # ST02
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),  # sent | accepted | rejected | ...
    sa.Column("detail", sa.Text, nullable=False, server_default=""),  # JSON, codes only
    sa.Column("updated_at", sa.Float, nullable=False),
    # looked up by numbers, then sifted by partner id (a 999 may use another qualifier)
    sa.Index("ix_x12_sent_control", "group_control", "set_control"),
    sa.Index("ix_x12_sent_interchange", "interchange"),
    sa.Index("ix_x12_sent_message", "message_id"),
    sa.Index("ix_x12_sent_channel_state", "channel", "state"),
)

# Dead letters of the Redis Streams queue that a retry or discard took
# (engine.queue.redis_streams): Redis forgets them only once that commit is made, so a
# retry or discard from another process at the same moment, reading the same dead set,
# takes none found here. Entry ids are never reused; rows go after 30 days.
dead_taken = sa.Table(
    "dead_taken",
    metadata,
    sa.Column("entry_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("taken_at", sa.Float, nullable=False),
)

# A check value of each fixed key the store was written with (engine.security.keys):
# a keyed hash of a constant, so a wrong pseudonym key is refused at start instead of
# silently making pseudonyms that match none of the store's earlier ones.
key_checks = sa.Table(
    "key_checks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
)

# An answer (a SCRIPT Status, Error, Verify or *Response) and the stored message it
# relates to (engine.store.correlation); ids only. A table of its own, since
# create_all adds tables to an existing store but never columns.
message_relations = sa.Table(
    "message_relations",
    metadata,
    sa.Column("message_id", sa.String(26), primary_key=True),  # the answer
    sa.Column("original_id", sa.String(26), nullable=False),  # the message it answers
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_message_relations_original", "original_id"),
)

# Queue entries of a queue backend outside the database (engine.queue.redis_streams),
# written in the same commit as their message and published to it afterwards, in the
# transaction that deletes them. Ids are never reused (AUTOINCREMENT on SQLite): they are
# the entries' ids in the queue, and Redis remembers which ones it already holds.
queue_outbox = sa.Table(
    "queue_outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("destination", sa.String(130), nullable=False),  # "channel/destination"
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("output_id", sa.String(26)),  # None: deliver the raw message
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_queue_outbox_destination", "destination", "id"),
    sqlite_autoincrement=True,
)

# Entries of the Redis queue whose delivery was confirmed by a commit, until Redis has
# removed them too (engine.queue.redis_streams): while Redis is away the removal waits in
# the process's memory, and a process stopped or killed meanwhile loses it; a later lease
# that takes such an entry finds it here and removes it instead of sending it again.
queue_acked = sa.Table(
    "queue_acked",
    metadata,
    sa.Column("entry_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("acked_at", sa.Float, nullable=False),
)

# Retention (engine.store.retention): per channel, the newest message id the pruner has
# looked at (every older one is pruned or listed as held), and the messages it found still
# queued or dead-lettered, looked at again on each pass until they can be pruned. Ids only.
retention_marks = sa.Table(
    "retention_marks",
    metadata,
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("through", sa.String(26), nullable=False),
)

retention_held = sa.Table(
    "retention_held",
    metadata,
    sa.Column("message_id", sa.String(26), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Index("ix_retention_held_channel", "channel", "message_id"),
)

# Revisions of the channel files and the mapping versions they pin (engine.change): the
# files' text (configuration, never PHI) and hashes, who made it and why, and its state.
# Numbers are taken under a lock, and the partial unique index admits one live revision.
revisions = sa.Table(
    "revisions",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("made_at", sa.Float, nullable=False),
    sa.Column("author", sa.String(80), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending|live|superseded|rejected
    sa.Column("digest", sa.String(64), nullable=False),  # of the whole content
    sa.Column("content", sa.Text, nullable=False),  # JSON: channel files and mapping hashes
    sa.Column("based_on", sa.Integer),  # the live revision when it was made
    sa.Column("rollback_of", sa.Integer),
    sa.Column("decided_by", sa.String(80)),  # who approved (last) or rejected it
    sa.Column("decided_at", sa.Float),
    sa.Column("live_at", sa.Float),
    sa.Index("ux_revisions_live", "state", unique=True,
             sqlite_where=sa.text("state = 'live'"),
             postgresql_where=sa.text("state = 'live'")),
)

# Each admin's approval of a pending revision (engine.change.revisions).
revision_approvals = sa.Table(
    "revision_approvals",
    metadata,
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("approver", sa.String(80), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
)
