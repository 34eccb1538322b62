"""The steps a message passes on its way through a channel, one module each, each with a
narrow input: duplicates, filters, splitting (the envelope), routing (filter verdict,
mapping, queue entries), shadow, and delivery (the destination worker). The channel
(engine.channel) wires them and holds the state machine."""
