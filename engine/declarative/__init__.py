"""Declarative mappings: an HL7v2-to-JSON mapping written as YAML by an analyst who does
not write Python, registered and versioned exactly like a Python mapping.

A file at `mappings/<name>/v<N>.yaml` must declare `mapping: <name>@<N>`:

    mapping: hl7v2-patient-summary@1
    accepts: hl7v2                      # the only input a declarative mapping reads
    emits: application/fhir+json
    description: what it is for
    when:                               # optional; the first rule that fails skips
      - field: MSH-9.1                  #   the message, with the rule as the reason;
                                        #   field is a path or an expression
        in: [ADT]                       # equals | in | not_in | matches | present,
        reason: only ADT is summarised  #   as in channel filters; reason is optional
    required: [PID-3, PV1]              # empty (any repetition) or absent segment ->
                                        #   MappingError "PID-3: is required ..."
    tables:                             # your own code tables, for lookup()
      visit-class: {I: IMP, O: AMB, E: EMER}
    output:                             # the JSON to produce, written as YAML
      resourceType: Patient             # plain values are copied as they are
      id: "=id('Patient', MSH-4.1, PID-3.1)"   # "=..." is an expression
      name:
        - each: PID-5                   # one list item per repetition of PID-5 ...
          family: "=PID-5.1"            # ... where PID-5 means the current repetition
          given: ["=PID-5.2", "=PID-5.3"]

Values: a string starting with `=` is an expression (`==` starts a literal `=`); any other
value is copied. Empty results (no value, "", [], {}) are left out, and so is an object
or list left with nothing in it: FHIR forbids empty elements, and absent HL7 fields are
common. A constant keeps its object alive, so to leave out a whole coding when its code
is unknown, take the whole coding from a table (see marital-status in the example).

Expressions: an HL7 path, 'text' (or "text"; a quote inside is doubled), or a function
call; functions nest. Paths are 1-based: `PID-5` (= PID-5.1), `PID-5.2`, `PID-3[2].4.1`
(repetition 2, component 4, subcomponent 1), `OBX[2]-5` (the second OBX), `MSH-9.1`. A
path reads "" when absent; HL7's explicit null `""` reads as empty too. A segment alone
(`PV1`) reads its name when the message has one, for `present:` and `if()`.

Repeating: a list item with `each:` is repeated; the item's other keys are its template.
`each: OBX` repeats for every OBX in the message (segment groups are not followed), and
paths into OBX read the current one; `each: PID-3` repeats for every repetition of PID-3,
and paths into PID-3 read the current repetition (`PID-3[1]` still means the first).
Items of `each` nest (`each: OBX` then `each: OBX-5`).

Functions (all pure; errors name the field, never its value):

    date(v)                      HL7 date/time -> FHIR date; a bad date fails naming its field
    datetime(v)                  -> FHIR dateTime; a time without a zone takes MSH-7's zone,
                                 else only the date is kept
    lookup(table, v[, default])  the entry for code v (as sent, then upper case) in one of
                                 your tables or a shipped one; default when v is empty, not
                                 in the table, or its entry is empty ('' leaves it out);
                                 without a default an unknown code fails naming the field
    concat(a, b, ...)            joined; empty if any part is empty ('urn:x:' + nothing = nothing)
    join(sep, a, ...)            the non-empty parts joined by sep
    default(v, fallback, ...)    the first non-empty argument
    if(test, then[, else])       then when test is not empty, else `else` (or nothing)
    upper(v) lower(v) trim(v)    case and spaces
    id(type, part, ...)          deterministic resource id: uuid5 of "type|part|..." in the
                                 namespace of engine/maplib/fhir.py (so id('Patient',
                                 facility, system, value) equals the Python mappings' id);
                                 empty if any part is empty
    system(ns[, uid[, type]])    Identifier.system for an HL7 assigning authority (HD):
                                 OID -> urn:oid:..., URI as is, else urn:conduit:id:<ns>

Shipped tables (read-only; a table of yours may not reuse these names):
administrative-sex (HL7 0001 -> gender code), patient-class (0004 -> Coding),
identifier-type (0203 -> Coding), name-use (0200), address-use and address-type (0190),
telecom-use (0201), telecom-system (0202).

Every mistake in the file (YAML, unknown settings, expression syntax, unknown function,
wrong number of arguments, unknown table, bad path) is reported when the mapping is
loaded, all at once, as `file:line:col: path: message`, like channel files.
"""

from engine.declarative.loader import load

__all__ = ["load"]
