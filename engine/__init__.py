"""Conduit: a healthcare interface engine.

The daemon receives clinical and administrative messages, maps them through versioned
plugins, delivers them through durable retry queues, and proves afterwards who touched
which patient's data. See ../shared/DESIGN.md for the shape of the whole.
"""

__version__ = "0.1.0"
