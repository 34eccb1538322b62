"""The conformance gate: a destination that asks for it is sent only outputs that are
valid FHIR R4 and follow the US Core profiles it names.

`r4` validates resources against the fhir.resources R4B models plus the required code
bindings the models leave out; `us_core` holds the profile rules; `gate` puts both
behind one check per output, with located reasons that name places, never values (they
go to the audit trail, the message's status and the channel's last error).
Nothing is imported here: the config schema reads `us_core.NAMES` and this default
without loading the FHIR models.
"""

# Validation runs inside routing, on the channel's event loop (routing may not await):
# about 1 ms per entry on the 2-core development machine, so at most ~0.3 s for one
# message by default; a gate on larger Bundles raises it knowingly.
DEFAULT_MAX_ENTRIES = 300
