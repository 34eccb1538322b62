"""A throwaway certificate authority for TLS tests: a CA, and server and client
certificates it signs, written as PEM files into a test's folder."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Pki:
    """A throwaway CA with server and client certificates, written as PEM files (give a
    second CA its own folder)."""

    def __init__(self, folder: Path, name: str = "Test Hospital CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca = self._cert(self.ca_name, self.ca_key.public_key(), ca=True)
        self.ca_file = self._write("ca.crt", self.ca)

    def server_context(self, stem: str = "server", dns: str = "localhost",
                       client_ca: bool = False) -> ssl.SSLContext:
        """A server-side context with a certificate for `dns`; with `client_ca`, client
        certificates signed by this CA are required (mutual TLS)."""
        cert, key = self.issue(stem, stem, dns=dns)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if client_ca:
            context.load_verify_locations(self.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _cert(self, name, public_key, *, ca=False, dns=None):
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(self.ca_name)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        if dns:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        return builder.sign(self.ca_key, hashes.SHA256())

    def _write(self, name, cert) -> str:
        path = self.folder / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def issue(self, stem: str, common_name: str, dns: str | None = None) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "North Wing Lab")])
        cert = self._write(f"{stem}.crt", self._cert(name, key.public_key(), dns=dns))
        key_path = self.folder / f"{stem}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert, str(key_path)
