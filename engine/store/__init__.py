"""Durable state in one SQL database through SQLAlchemy: the encrypted message store,
the destination queues and the hash-chained audit trail. SQLite by default, PostgreSQL
in production; the same code runs on both."""
