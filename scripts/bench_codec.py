"""HL7v2 codec benchmark: our tokenizer, routing and validation against hl7 and hl7apy.

A benchmark, never a test: it measures and prints. For an ADT^A01 and an ORU^R01 with 20
OBX, in one process on one core, messages per second (median of several rounds) for:
  (a) ours: `Hl7Message.parse` (tokenize: segments only, fields split when read)
  (b) ours: `Hl7v2Codec().parse(raw)` (bytes in, routing fields out: type, control id,
      version, sender, PID-3), what every channel pays
  (c) ours: (b) plus `validate(..., "strict")`, what a strict channel pays
  (d) the `hl7` package's `hl7.parse`
  (e) hl7apy `parse_message`, validation off (tolerant)
  (f) hl7apy `parse_message`, strict, with `force_validation` (its full validation)
Human-readable lines first; the last line is one JSON object.
Usage: scripts/bench --codec-only [--quick]   (or python scripts/bench_codec.py)
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.formats.hl7v2.validation import validate

ADT = "\r".join([
    "MSH|^~\\&|EPIC|LAKESHORE^1.2.840.114350.1.13.999.2^ISO|CONDUIT|HIE|20240312084512-0500||"
    "ADT^A01^ADT_A01|EP2024031208451200001|P|2.5.1|||AL|NE",
    "EVN|A01|20240312084500-0500|||JSMITH^SMITH^JANE^^^^^^EPIC|20240312084000-0500",
    "PID|1||E4410023^^^EPI^MR~999001234^^^SSA^SS||HALVORSEN^KRISTIN^ANNE^^^^L~HALVORSEN^KRIS"
    "^^^^^N||19750419|F||2106-3^White^CDCREC|1402 WILLOW BEND RD^APT 3B^MADISON^WI^53711^USA"
    "^H^^DANE~PO BOX 4471^^MADISON^WI^53744^USA^M||^PRN^PH^^1^608^5550142~^NET^Internet^"
    "kris@example.com|^WPN^PH^^1^608^5550177^204|ENG|M|NON|V0000123^^^EPI^VN||||||N||||||N",
    "PD1|||LAKESHORE CLINIC^^1001|1234567890^OKAFOR^CHIDI^N^^DR^MD",
    "NK1|1|HALVORSEN^ERIK^^^^^L|SPO^Spouse^HL70063|1402 WILLOW BEND RD^^MADISON^WI^53711^USA"
    "|^PRN^PH^^1^608^5550143",
    "PV1|1|I|4N^0412^B^LAKESHORE^^^MAIN^4|E|||1234567890^OKAFOR^CHIDI^N^^DR^MD^^NPI&2.16.840."
    "1.113883.4.6&ISO^L^^^NPI|2345678901^BRANDT^LUCIA^^^^MD||MED||||1|||1234567890^OKAFOR^"
    "CHIDI^N^^DR^MD|IN|V0000123^^^EPI^VN|COMMERCIAL|||||||||||||||||||LAKESHORE||ADM|||"
    "20240312084000-0500",
    "PV2|||^CHEST PAIN",
    "OBX|1|NM|8302-2^Body height^LN||170|cm^centimeter^UCUM|||||F",
    "AL1|1|DA|70618^Penicillin^RXNORM|MO|Hives",
    "DG1|1||R07.9^Chest pain, unspecified^I10||20240312|A",
    "GT1|1||HALVORSEN^KRISTIN^ANNE||1402 WILLOW BEND RD^^MADISON^WI^53711^USA",
    "IN1|1|PPO1^Blue Preferred PPO|BCBSWI01|BLUE CROSS BLUE SHIELD OF WI|PO BOX 9000^^MADISON^"
    "WI^53708^USA||^WPN^PH^^1^800^5550100|GRP77120||||||||HALVORSEN^KRISTIN^ANNE|SEL|19750419",
]) + "\r"

_TESTS = [  # LOINC, name, value, unit, range, flag: a CBC and a metabolic panel
    ("6690-2", "WBC", "7.2", "10*3/uL", "4.0-11.0", "N"),
    ("789-8", "RBC", "4.61", "10*6/uL", "4.20-5.40", "N"),
    ("718-7", "Hemoglobin", "13.9", "g/dL", "12.0-16.0", "N"),
    ("4544-3", "Hematocrit", "41.2", "%", "36.0-46.0", "N"),
    ("787-2", "MCV", "89.4", "fL", "80.0-100.0", "N"),
    ("785-6", "MCH", "30.2", "pg", "27.0-33.0", "N"),
    ("786-4", "MCHC", "33.7", "g/dL", "32.0-36.0", "N"),
    ("788-0", "RDW", "13.1", "%", "11.5-14.5", "N"),
    ("777-3", "Platelets", "412", "10*3/uL", "150-400", "H"),
    ("2345-7", "Glucose", "128", "mg/dL", "70-99", "H"),
    ("3094-0", "BUN", "14", "mg/dL", "7-20", "N"),
    ("2160-0", "Creatinine", "0.92", "mg/dL", "0.60-1.10", "N"),
    ("2951-2", "Sodium", "139", "mmol/L", "136-145", "N"),
    ("2823-3", "Potassium", "3.3", "mmol/L", "3.5-5.1", "L"),
    ("2075-0", "Chloride", "101", "mmol/L", "98-107", "N"),
    ("2028-9", "CO2", "25", "mmol/L", "22-29", "N"),
    ("17861-6", "Calcium", "9.4", "mg/dL", "8.6-10.3", "N"),
    ("2885-2", "Protein", "7.1", "g/dL", "6.0-8.3", "N"),
    ("1751-7", "Albumin", "4.2", "g/dL", "3.5-5.2", "N"),
    ("1975-2", "Bilirubin", "0.7", "mg/dL", "0.1-1.2", "N"),
]
ORU = "\r".join([
    "MSH|^~\\&|BEAKER|LAKESHORE^1.2.840.114350.1.13.999.3^ISO|CONDUIT|HIE|20240312101500-0500"
    "||ORU^R01^ORU_R01|LB2024031210150000042|P|2.5.1|||AL|NE",
    "PID|1||E4410023^^^EPI^MR||HALVORSEN^KRISTIN^ANNE^^^^L||19750419|F|||1402 WILLOW BEND RD"
    "^^MADISON^WI^53711^USA^H",
    "PV1|1|O|LAB^^^LAKESHORE||||1234567890^OKAFOR^CHIDI^N^^DR^MD",
    "ORC|RE|ORD448812^EPIC|LAB7781^BEAKER||CM||||20240312080000-0500|||1234567890^OKAFOR^"
    "CHIDI^N^^DR^MD",
    "OBR|1|ORD448812^EPIC|LAB7781^BEAKER|80053^Comprehensive metabolic panel^CPT|||"
    "20240312081500-0500|||||||20240312082000-0500||1234567890^OKAFOR^CHIDI^N^^DR^MD||||||"
    "20240312101400-0500|||F",
    *(f"OBX|{n}|NM|{code}^{name}^LN||{value}|{unit}^^UCUM|{low_high}|{flag}|||F|||"
      f"20240312081500-0500" for n, (code, name, value, unit, low_high, flag)
      in enumerate(_TESTS, start=1)),
    "NTE|1|L|Specimen slightly hemolyzed.",
    "SPM|1|SP7781^BEAKER||BLD^Whole blood^HL70487|||||||||||||20240312081500-0500",
]) + "\r"


def rate(fn: Callable[[], Any], rounds: int, round_seconds: float, cap: int) -> float:
    """Median messages/s over `rounds` rounds of about `round_seconds` each; `cap` limits
    the calls in one round (hl7apy at ~50/s would otherwise own the run)."""
    fn()  # warm-up: lazy imports, compiled structures, caches
    n, t = 1, 0.0
    while n < cap:  # calibrate: how many calls fill a round
        start = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - start
        if t >= round_seconds / 4:
            break
        n *= 2
    n = max(1, min(cap, int(n * round_seconds / max(t, 1e-9))))
    rates = []
    gc.collect()
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def cases(text: str) -> dict[str, tuple[str, Callable[[], Any], bool]]:
    """The six ways to read one message: key -> (label, call, is_hl7apy)."""
    raw = text.encode()
    codec = Hl7v2Codec()

    def route_and_validate() -> None:
        problems = validate(codec.parse(raw).body, "strict")
        assert not [p for p in problems if p.severity == "E"], problems

    return {
        "tokenize": ("(a) ours: tokenize", lambda: Hl7Message.parse(text), False),
        "route": ("(b) ours: parse + routing fields", lambda: codec.parse(raw), False),
        "validate": ("(c) ours: (b) + strict validation", route_and_validate, False),
        "hl7": ("(d) hl7 package: hl7.parse", lambda: hl7.parse(text), False),
        "hl7apy": ("(e) hl7apy: parse, validation off",
                   lambda: parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT),
                   True),
        "hl7apy_validate": ("(f) hl7apy: parse + validation",
                            lambda: parse_message(text, validation_level=VALIDATION_LEVEL.STRICT,
                                                  force_validation=True), True),
    }


RATIOS = {  # ours / theirs
    "tokenize_vs_hl7": ("tokenize", "hl7"),
    "route_vs_hl7": ("route", "hl7"),
    "route_vs_hl7apy": ("route", "hl7apy"),
    "validate_vs_hl7apy_validate": ("validate", "hl7apy_validate"),
}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench_codec.py", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="rounds per case (median taken)")
    p.add_argument("--round-seconds", type=float, default=0.3)
    p.add_argument("--hl7apy-cap", type=int, default=20, help="max hl7apy calls per round")
    p.add_argument("--quick", action="store_true", help="a ~5 s smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.round_seconds, args.hl7apy_cap = 3, 0.1, 5

    messages = {"adt": ("ADT^A01", ADT), "oru": ("ORU^R01 20 OBX", ORU)}
    figures: dict[str, dict[str, float]] = {}
    labels: dict[str, str] = {}
    for key, (_name, text) in messages.items():
        figures[key] = {}
        for case, (label, fn, slow) in cases(text).items():
            labels[case] = label
            cap = args.hl7apy_cap if slow else 1_000_000
            figures[key][case] = rate(fn, args.rounds if not slow else 5, args.round_seconds, cap)

    names = [name for name, _ in messages.values()]
    print(f"codec: messages/s, median of {args.rounds} rounds (hl7apy: 5 rounds of at most "
          f"{args.hl7apy_cap}), one core")
    print(f"  {'':42}" + "".join(f"{n:>16}" for n in names))
    for case, label in labels.items():
        print(f"  {label:42}" + "".join(f"{figures[k][case]:>16,.0f}" for k in messages))
    ratios = {key: {name: figures[key][a] / figures[key][b] for name, (a, b) in RATIOS.items()}
              for key in messages}
    print("  ratios, ours / theirs:")
    for name, (a, b) in RATIOS.items():
        label = f"{labels[a][:3]} / {labels[b][:3]} ({name.replace('_', ' ')})"
        print(f"  {label:42}" + "".join(f"{ratios[k][name]:>15,.1f}x" for k in messages))
    print(json.dumps({key: {**{c: round(v, 1) for c, v in figures[key].items()},
                            **{f"ratio_{n}": round(v, 2) for n, v in ratios[key].items()}}
                      for key in messages}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
