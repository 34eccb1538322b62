"""The daemon's HTTP face: health checks now; the status page and API build on it."""
