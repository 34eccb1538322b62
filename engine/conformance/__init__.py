"""The conformance gate: a destination that asks for it is sent only outputs that are
valid FHIR R4 and follow the US Core profiles it names.

`r4` validates resources against the fhir.resources R4B models plus the required code
bindings the models leave out; `us_core` holds the profile rules; `gate` puts both
behind one check per output, with located reasons that name places, never values (they
go to the audit trail, the message's status and the channel's last error).
Nothing is imported here: the config schema reads `us_core.NAMES` without loading the
FHIR models.
"""
