"""999 implementation acknowledgment (005010X231A1): what a partner says of each group
and set it received.

Written from the public facts of the 999's structure (CMS and payers' companion guides
describe it for the HIPAA sets): AK1 names the group answered; per set a 2000 loop (AK2)
with, per segment in error, a 2100 loop (IK3 and its context CTX) holding, per element
in error, a 2110 loop (IK4 and its CTX); IK5 closes each set's answer and AK9 the
group's. The codes are the ones a reader of an acknowledgement acts on (IK501 and
AK901: A accepted, E accepted with errors, M, W, X rejected for security or syntax
reasons, R rejected, P partially accepted), so an unknown answer code is reported.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import ST, L, N, R, S
from engine.formats.x12.structure import SetDefinition

_SET_CODES = ("A", "E", "M", "R", "W", "X")
_GROUP_CODES = ("A", "E", "M", "P", "R", "W", "X")

ACKNOWLEDGMENT = SetDefinition("999", "005010X231A1", "Implementation acknowledgment", ST(
    "999",
    R("AK1", required=(1, 2)),
    L("2000", "Transaction set response header", R("AK2", required=(1, 2)), "S", N,
      L("2100", "Error identification", R("IK3", required=(1, 2, 4)), "S", N,
        S("CTX", 10, required=(1,)),
        L("2110", "Implementation data element note", R("IK4", required=(1, 3)), "S", N,
          S("CTX", 10, required=(1,)))),
      R("IK5", required=(1,), codes=((1, _SET_CODES),))),
    R("AK9", required=(1, 2, 3, 4), codes=((1, _GROUP_CODES),)),
))

DEFINITIONS = (ACKNOWLEDGMENT,)
