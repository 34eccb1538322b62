"""Configuration: schema (msgspec structs), loader (YAML with file:line:col errors) and
cross-file checks."""
