"""Durable per-destination queues and the one retry policy of the engine."""
