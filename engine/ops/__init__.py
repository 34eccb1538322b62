"""Operations: what watches the engine and never steers it.

`alerts` (rules over live state that fire, repeat and clear), `slo` (service-level
objectives and burn rates), `stats` (live counts and latencies for the page and
/metrics) and `tracing` (one OpenTelemetry trace per message). Each reads the engine's
events and state and reports them; none of them changes what the engine does with a
message. The engine builds them; they name its type only in annotations.
"""
