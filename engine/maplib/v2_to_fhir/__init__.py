"""HL7v2 to FHIR R4, leniently and at the breadth analysts compare engines on.

`frame.Build` is one message's conversion (its facts and the resources made so far);
the segment converters (people, visit, clinical, financial, results, orders, documents,
pharmacy, administrations, gives, immunization, scheduling, provenance) add to it, and
one module per message type (adt, bar, dft, ref, mdm, orm, oml, omg, oru, oul, rde,
rds, ras, rgv, vxu, siu, ppr) assembles them. Mapping files under mappings/ are thin
declarations over these builders, and `dispatch` picks the builder from MSH-9 for a
mixed feed.
"""
