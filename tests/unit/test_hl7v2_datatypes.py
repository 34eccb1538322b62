"""HL7 v2 data types to FHIR: dates and zones, authorities, identifiers, names, addresses,
telecoms, people and locations, as a mapping author relies on them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.patient import Patient
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import MappingError
from engine.formats.hl7v2 import Delimiters, Repetition
from engine.formats.hl7v2.datatypes import (
    cx_to_identifier,
    dtm_offset,
    hd_system,
    pl_display,
    present,
    to_fhir_date,
    to_fhir_datetime,
    xad_to_address,
    xcn_display,
    xpn_to_human_name,
    xtn_to_contact_point,
)
from engine.leniency import lenient


def rep(text: str) -> Repetition:
    """One field repetition with the standard delimiters, as the tokenizer hands it over."""
    return Repetition(text, Delimiters())


# ---- dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v2", "fhir"),
    [
        ("1986", "1986"),
        ("198604", "1986-04"),
        ("19860423", "1986-04-23"),
        ("198604231230", "1986-04-23"),  # a birth time is not part of birthDate
        ("19860423123045.1234-0500", "1986-04-23"),
        ("20000229", "2000-02-29"),
    ],
)
def test_date_keeps_the_precision_sent_and_drops_time(v2: str, fhir: str) -> None:
    assert to_fhir_date(v2, "PID-7") == fhir


@pytest.mark.parametrize("v2", ["", '""', "   "])
def test_absent_or_null_date_is_none(v2: str) -> None:
    assert to_fhir_date(v2, "PID-7") is None
    assert to_fhir_datetime(v2, "PV1-44") is None


@pytest.mark.parametrize(
    ("v2", "fhir"),
    [
        ("20240101123000+0500", "2024-01-01T12:30:00+05:00"),
        ("202401011230-0330", "2024-01-01T12:30:00-03:30"),
        ("2024010112+0000", "2024-01-01T12:00:00+00:00"),
        ("20240101123000.25-0500", "2024-01-01T12:30:00.25-05:00"),
        ("20241231235959+1400", "2024-12-31T23:59:59+14:00"),
        ("202401", "2024-01"),
        ("2024", "2024"),
        ("20240101-0500", "2024-01-01"),  # a zone on a bare date carries nothing
    ],
)
def test_datetime_converts_zone_and_precision(v2: str, fhir: str) -> None:
    assert to_fhir_datetime(v2, "PV1-44") == fhir


def test_time_without_zone_keeps_only_the_date_and_says_so_when_lenient() -> None:
    """FHIR requires a zone with a time; inventing one would shift the time by hours. The
    time lost is a warning under a lenient conversion (two troponins at 03:15 and 06:15
    must not both read "that day" unremarked), and nothing more under a strict one,
    whose versions promised this output."""
    assert to_fhir_datetime("20240312083000", "PV1-44") == "2024-03-12"
    with lenient() as notes:
        assert to_fhir_datetime("20240312083000", "OBX-14") == "2024-03-12"
        assert to_fhir_datetime("20240312", "OBX-14") == "2024-03-12"  # no time: no loss
    assert [(w.at, "only the date is kept" in w.text) for w in notes.warnings] == [
        ("OBX-14", True)]


def test_time_without_zone_takes_the_senders_zone() -> None:
    assert to_fhir_datetime("20240312083000", "PV1-44", "-0600") == "2024-03-12T08:30:00-06:00"


def test_own_zone_wins_over_the_senders() -> None:
    assert to_fhir_datetime("202403120830+0100", "PV1-44", "-0600") == "2024-03-12T08:30:00+01:00"


@pytest.mark.parametrize(
    "bad",
    [
        "2024-01-01",  # ISO, not HL7
        "20241301",  # month 13
        "20240230",  # 30 February
        "20230229",  # not a leap year
        "20240101246000",  # hour 24
        "20240101126000",  # minute 60
        "20240101120000+1500",  # no such zone
        "0000",
        "2024010",  # half a day
        "20240101 1200",
        "12/03/1986",
    ],
)
def test_invalid_date_fails_naming_the_field_not_the_value(bad: str) -> None:
    with pytest.raises(MappingError) as caught:
        to_fhir_datetime(bad, "PID-29")
    assert caught.value.field == "PID-29"
    assert bad not in str(caught.value)
    with pytest.raises(MappingError):
        to_fhir_date(bad, "PID-7")


def test_sender_offset_is_read_from_msh7_and_never_raises() -> None:
    assert dtm_offset("20240312084512-0500") == "-0500"
    assert dtm_offset("20240312084512") is None
    assert dtm_offset("yesterday") is None
    assert dtm_offset("") is None


@st.composite
def hl7_timestamps(draw: st.DrawFn) -> str:
    """Any real instant written as a v2 DTM at a random precision, with or without zone."""
    moment = draw(st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2200, 1, 1)))
    digits = draw(st.sampled_from([4, 6, 8, 10, 12, 14]))
    text = moment.strftime("%Y%m%d%H%M%S")[:digits]
    if digits == 14 and draw(st.booleans()):
        text += "." + str(draw(st.integers(0, 9999))).zfill(4)[: draw(st.integers(1, 4))]
    if draw(st.booleans()):
        minutes = draw(st.integers(-13 * 60, 14 * 60))
        zone = timezone(timedelta(minutes=minutes))
        text += datetime(2000, 1, 1, tzinfo=zone).strftime("%z")
    return text


@given(hl7_timestamps(), st.sampled_from([None, "-0500", "+0930"]))
def test_every_real_timestamp_becomes_a_valid_fhir_datetime(v2: str, sender: str | None) -> None:
    result = to_fhir_datetime(v2, "PV1-44", sender)
    Patient.model_validate({"resourceType": "Patient", "deceasedDateTime": result})
    assert result is not None
    date_digits = v2.split("+")[0].split("-")[0][:8]
    assert result[:10].replace("-", "") == date_digits


# ---- assigning authorities and identifiers ----------------------------------------------


@pytest.mark.parametrize(
    ("hd", "system"),
    [
        (("UWHMRN", "1.2.840.114350.1.13", "ISO"), "urn:oid:1.2.840.114350.1.13"),
        (("", "2.16.840.1.113883.4.6", ""), "urn:oid:2.16.840.1.113883.4.6"),
        (("", "urn:oid:2.16.840.1", "ISO"), "urn:oid:2.16.840.1"),
        (("X", "https://ids.example.org/mrn", "URI"), "https://ids.example.org/mrn"),
        (
            ("", "6F9619FF-8B86-D011-B42D-00C04FC964FF", "UUID"),
            "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
        ),
        (("EPI", "", ""), "urn:conduit:id:EPI"),
        (("MAIN LAB/2", "", ""), "urn:conduit:id:MAIN%20LAB%2F2"),
        (("HOSP", "hosp.example.org", "DNS"), "urn:conduit:id:HOSP"),
        (("", "hosp.example.org", "DNS"), "urn:conduit:id:hosp.example.org"),
        (("", "", ""), None),
        (('""', "", ""), None),
    ],
)
def test_assigning_authority_becomes_a_stable_system(
    hd: tuple[str, str, str], system: str | None
) -> None:
    assert hd_system(*hd) == system


def test_identifier_with_type_and_oid_authority() -> None:
    ident = cx_to_identifier(rep("9007316^^^UWHMRN&1.2.840.1&ISO^MR"), "FAC")
    assert ident == {
        "use": "usual",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "MR",
                    "display": "Medical record number",
                }
            ]
        },
        "system": "urn:oid:1.2.840.1",
        "value": "9007316",
    }


def test_identifier_without_authority_belongs_to_the_sender() -> None:
    assert cx_to_identifier(rep("A99812"), "STMARYS") == {
        "system": "urn:conduit:id:STMARYS",
        "value": "A99812",
    }


def test_local_identifier_type_is_text_not_a_false_v2_code() -> None:
    ident = cx_to_identifier(rep("700018832^^^CMRN^CMRN"), "FAC")
    assert ident is not None
    assert ident["type"] == {"text": "CMRN"}


def test_social_security_number_uses_the_us_ssn_system() -> None:
    ident = cx_to_identifier(rep("999001234^^^SSA^SS"), "FAC")
    assert ident is not None
    assert ident["system"] == "http://hl7.org/fhir/sid/us-ssn"


@pytest.mark.parametrize("text", ["", "^^^EPI^MR", '""^^^EPI^MR'])
def test_identifier_without_a_value_is_none(text: str) -> None:
    assert cx_to_identifier(rep(text), "FAC") is None


# ---- names, addresses, telecoms ---------------------------------------------------------


def test_name_puts_middle_names_in_given_and_degree_in_suffix() -> None:
    assert xpn_to_human_name(rep("HALVORSEN^KRISTIN^ANNE^JR^DR^PHD^L")) == {
        "use": "official",
        "family": "HALVORSEN",
        "given": ["KRISTIN", "ANNE"],
        "prefix": ["DR"],
        "suffix": ["JR", "PHD"],
    }


@pytest.mark.parametrize(("code", "use"), [("M", "maiden"), ("N", "nickname"), ("D", "usual")])
def test_name_type_maps_to_use(code: str, use: str) -> None:
    name = xpn_to_human_name(rep(f"DOE^JANE^^^^^{code}"))
    assert name is not None
    assert name["use"] == use


def test_alias_name_has_no_use() -> None:
    """FHIR has no alias use; "usual" would claim it is the name the patient goes by."""
    assert xpn_to_human_name(rep("BAPTISTE^MIMI^^^^^A")) == {
        "family": "BAPTISTE",
        "given": ["MIMI"],
    }


@pytest.mark.parametrize("text", ["", "^^^^^^L", '""^""'])
def test_empty_name_is_none(text: str) -> None:
    assert xpn_to_human_name(rep(text)) is None


def test_address_parts_and_type() -> None:
    assert xad_to_address(rep("1402 WILLOW BEND RD^APT 3B^MADISON^WI^53711^USA^H^^DANE")) == {
        "use": "home",
        "line": ["1402 WILLOW BEND RD", "APT 3B"],
        "city": "MADISON",
        "district": "DANE",
        "state": "WI",
        "postalCode": "53711",
        "country": "USA",
    }


@pytest.mark.parametrize(
    ("code", "element"),
    [
        ("M", {"type": "postal"}),
        ("B", {"use": "work"}),
        ("O", {"use": "work"}),
        ("C", {"use": "temp"}),
        ("BA", {"use": "old"}),
        ("", {}),
    ],
)
def test_address_type_code(code: str, element: dict) -> None:
    address = xad_to_address(rep(f"PO BOX 1^^BEND^OR^97709^^{code}"))
    assert address is not None
    assert {k: address[k] for k in ("use", "type") if k in address} == element


def test_empty_address_is_none() -> None:
    assert xad_to_address(rep("^^^^^^H")) is None


@pytest.mark.parametrize(
    ("text", "default", "point"),
    [
        ("(617)555-1212", "home", {"system": "phone", "value": "(617)555-1212", "use": "home"}),
        (
            "(617)555-1212X22",
            "work",
            {"system": "phone", "value": "(617)555-1212X22", "use": "work"},
        ),
        (
            "^PRN^PH^^1^608^5550142",
            "work",
            {"system": "phone", "value": "+1 (608) 555-0142", "use": "home"},
        ),
        (
            "^WPN^PH^^^608^5550177^204",
            "home",
            {"system": "phone", "value": "(608) 555-0177 ext. 204", "use": "work"},
        ),
        (
            "^PRN^CP^^^608^5550199",
            "home",
            {"system": "phone", "value": "(608) 555-0199", "use": "mobile"},
        ),
        (
            "^WPN^FX^^^541^5550181",
            "work",
            {"system": "fax", "value": "(541) 555-0181", "use": "work"},
        ),
        (
            "^BPN^BP^^^541^5550190",
            "work",
            {"system": "pager", "value": "(541) 555-0190", "use": "work"},
        ),
        (
            "^NET^Internet^kris@example.com",
            "home",
            {"system": "email", "value": "kris@example.com", "use": "home"},
        ),
        (
            "^NET^X.400^a@example.org",
            "work",
            {"system": "email", "value": "a@example.org", "use": "work"},
        ),
        (
            "^EMR^PH^^^^^^^^^+16085550100",
            "home",
            {"system": "phone", "value": "+16085550100", "use": "home"},
        ),
        (
            "(818)555-0165^PRN^PH",
            "work",
            {"system": "phone", "value": "(818)555-0165", "use": "home"},
        ),
    ],
)
def test_telecom_reads_v23_and_v25_styles(text: str, default: str, point: dict) -> None:
    assert xtn_to_contact_point(rep(text), default) == point


@pytest.mark.parametrize("text", ["", "^PRN^PH", '""'])
def test_telecom_without_number_is_none(text: str) -> None:
    assert xtn_to_contact_point(rep(text), "home") is None


# ---- people and places ------------------------------------------------------------------


def test_doctor_display_reads_like_a_name_without_the_id() -> None:
    display = xcn_display(rep("1234567890^OKAFOR^CHIDI^N^^DR^MD^^NPI&2.16.840.1&ISO"))
    assert display == "DR CHIDI N OKAFOR, MD"
    assert xcn_display(rep("4471^PATEL^ANIKA")) == "ANIKA PATEL"
    assert xcn_display(rep("4471")) == ""


def test_location_display_joins_point_of_care_room_and_bed() -> None:
    assert pl_display(rep("4N^0412^B^UWHOSP^^^MAIN^4")) == "4N / 0412 / B"
    assert pl_display(rep("ED^^01")) == "ED / 01"
    assert pl_display(rep("^^^UWHOSP")) == ""


def test_explicit_null_reads_as_absent() -> None:
    assert present('""') == ""
    assert present(" 42 ") == "42"
