"""The helpers every X12 mapping shares (x12_codes, x12_fhir, fhir_to_x12): a code, a
contact or a party written or read by one mapping reads the same in another."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.formats.x12.tokens import Delimiters, Segment
from engine.maplib import fhir_to_x12 as fx
from engine.maplib import x12_auth, x12_codes
from engine.maplib import x12_fhir as xf

DELIMITERS = Delimiters("*", "^", ":", "~")


def seg(text: str) -> Segment:
    return Segment(text.split("*"), DELIMITERS)


@pytest.mark.parametrize(("system", "sent", "fhir"), [
    (x12_codes.ICD10CM, "E119", "E11.9"),
    (x12_codes.ICD10CM, " S72001A ", "S72.001A"),
    (x12_codes.ICD10CM, "R51", "R51"),
    (x12_codes.ICD10CM, "E11.9", "E11.9"),
    (x12_codes.ICD9CM, "25000", "250.00"),
    (x12_codes.ICD9CM, "E8889", "E888.9"),
    ("http://www.cms.gov/Medicare/Coding/ICD10", "0SRC0J9", "0SRC0J9"),
])
def test_icd_codes_get_their_dot_back_and_lose_it_again(system, sent, fhir):
    assert x12_codes.icd_code(system, sent) == fhir
    assert x12_codes.x12_icd(fhir) == sent.strip().replace(".", "")


def test_procedure_codes_name_their_system_by_qualifier():
    assert x12_codes.procedure_system("HC", "99213") == x12_codes.CPT
    assert x12_codes.procedure_system("HC", "0001F") == x12_codes.CPT
    assert x12_codes.procedure_system("HC", "J1100") == x12_codes.HCPCS
    assert x12_codes.procedure_system("AD", "D0120") == x12_codes.CDT
    assert x12_codes.procedure_system("N4", "00002143380") == x12_codes.NDC
    assert x12_codes.procedure_system("IV", "1") == "urn:conduit:code:x12:IV"
    assert x12_codes.procedure_system("", "1", unknown="unknown") == \
        "urn:conduit:code:x12:unknown"


def test_a_278_names_hcpcs_by_its_oid_and_writes_back_the_qualifier_it_read():
    for qualifier, code in (("HC", "J1100"), ("HC", "29881"), ("AD", "D2740"),
                            ("N4", "00002143380"), ("ZZ", "X1")):
        system = x12_auth.procedure_system(qualifier, code)
        assert x12_auth.procedure_qualifier(system) == qualifier
    assert x12_auth.procedure_system("HC", "J1100") == x12_auth.HCPCS_OID


def test_relationship_codes_read_as_subscriber_relationship():
    assert x12_codes.relationships("18", "01", "19") == {
        "18": "self", "01": "spouse", "19": "child"}
    assert x12_codes.INDIVIDUAL_RELATIONSHIPS["09"] == "child"  # adopted child (834)
    assert x12_codes.INDIVIDUAL_RELATIONSHIPS["16"] == "parent"


def test_codings_leave_out_an_empty_display_and_an_absent_code():
    assert x12_codes.concept("s", "c") == {"coding": [{"system": "s", "code": "c"}]}
    assert x12_codes.code_concept("s", "") is None
    assert x12_codes.code_concept("s", "c", "Name") == {
        "coding": [{"system": "s", "code": "c", "display": "Name"}]}


def test_a_per_reads_each_number_with_its_use():
    per = seg("PER*IP**HP*5555550100*EM*PAT@EXAMPLE.COM*CP*5555550101")
    assert xf.telecom(per) == [
        {"system": "phone", "value": "5555550100", "use": "home"},
        {"system": "email", "value": "PAT@EXAMPLE.COM"},
        {"system": "phone", "value": "5555550101", "use": "mobile"}]
    assert xf.telecom(None) == []


def test_a_contact_written_as_per_reads_back_the_same():
    points = [{"system": "phone", "value": "5555550100 x12"},
              {"system": "fax", "value": "5555550199"}]
    per = seg("*".join(["PER", "IC", "", *fx.per_elements(points)]))
    assert per.element(5) == "EX"
    assert x12_auth.telecom(per) == points


def test_a_patient_written_as_nm1_dmg_and_n3_n4_reads_back_as_the_same_patient():
    written = xf.patient(seg("NM1*IL*1*DOE*JANE*Q***MI*W123456789"),
                         [seg("N3*12 ELM ST"), seg("N4*SPRINGFIELD*IL*62701"),
                          seg("DMG*D8*19800214*F")], "PAYER1")
    segments = [seg("*".join(s)) for s in (fx.nm1("IL", written, "MI"),
                                           *fx.address_segments(written),
                                           *fx.dmg(written))]
    again = xf.patient(segments[0], segments, "PAYER1")
    assert again == written


def test_an_n1_reads_as_the_same_organization_as_its_nm1():
    from_n1 = xf.organization(xf.as_nm1(seg("N1*PR*ACME HEALTH*XV*12345")), payer=True)
    from_nm1 = xf.organization(seg("NM1*PR*2*ACME HEALTH*****XV*12345"), payer=True)
    assert from_n1 == from_nm1


def test_money_is_usd_unless_the_set_names_another_currency():
    assert xf.money("12.50") == {"value": Decimal("12.50"), "currency": "USD"}
    assert xf.money("12.50", "CAD") == {"value": Decimal("12.50"), "currency": "CAD"}
    assert xf.money("") is None


def test_dates_read_as_a_date_or_a_period():
    assert xf.dated(seg("DTP*472*D8*20240105"), "serviced") == {
        "servicedDate": "2024-01-05"}
    assert xf.dated(seg("DTP*435*RD8*20240105-20240107"), "timing") == {
        "timingPeriod": {"start": "2024-01-05", "end": "2024-01-07"}}
    assert xf.dated(seg("DTP*472*D8*20240231"), "serviced") == {}
    assert xf.dated(None, "serviced") == {}
    assert xf.dtm_date(seg("DTM*472*20240105")) == "2024-01-05"
    assert xf.dtm_date(None) is None
