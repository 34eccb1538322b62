"""engine/connectors/tls.py's loopback rule, and `tls:` on the HTTP destinations."""

from __future__ import annotations

import msgspec
import pytest

from engine.connectors.fhir import FhirDestinationConfig
from engine.connectors.http import HttpDestinationConfig
from engine.connectors.tls import ClientTls, ServerTls, exposed, loopback


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("", False),
    ("192.168.1.10", False), ("localhost.example.org", False), ("fe80::1", False)])
def test_loopback(host: str, expected: bool) -> None:
    assert loopback(host) is expected


def test_exposed_means_in_clear_beyond_this_machine() -> None:
    assert exposed("0.0.0.0", None)
    assert not exposed("0.0.0.0", ServerTls(cert="s.crt", key="s.key"))
    assert not exposed("127.0.0.1", None)


@pytest.mark.parametrize("struct", [HttpDestinationConfig, FhirDestinationConfig])
def test_destination_tls_takes_an_https_url_only(struct: type) -> None:
    tls = {"ca": "conf/tls/hospital-ca.pem", "server_name": "fhir.northwing.internal"}
    made = msgspec.convert({"type": struct.__struct_config__.tag, "name": "ehr",
                            "url": "https://10.0.0.5/fhir", "tls": tls}, struct)
    assert made.tls == ClientTls(ca="conf/tls/hospital-ca.pem",
                                 server_name="fhir.northwing.internal")
    with pytest.raises(msgspec.ValidationError, match="tls applies to an https:// URL"):
        msgspec.convert({"type": struct.__struct_config__.tag, "name": "ehr",
                         "url": "http://10.0.0.5/fhir", "tls": tls}, struct)
