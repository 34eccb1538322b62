"""The steps a message passes on its way through a channel, one module each, each with a
narrow input; the channel (engine.channel) wires them and holds the state machine.

  envelope    one message, or the parts of an HL7 batch or a split Bundle, and the one
              reply for the whole (splitting: which Bundle entries become parts)
  reading     parse and validate through the codec
  duplicates  a resend or a reused control id, from pending keys, index and store
  filters     the channel's rules (FHIRPath off the event loop for big messages)
  routing     filter verdict -> mapping -> output and queue entries
  shadow      a candidate mapping beside the live one, its differences counted
  commit      the durable commit, then the replies and "acknowledged"
  delivery    the destination worker: queue -> destination, per the retry policy
"""
