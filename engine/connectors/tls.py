"""TLS settings for connectors, and the SSL contexts they become.

A listener can demand client certificates (mutual TLS) signed by a given CA; a sender
verifies the receiver against a CA and may present its own certificate. Files are PEM,
usually kept under conf/. A listener without TLS is fine on loopback only: `exposed`
says when one would carry PHI and credentials across the network in clear (validation
refuses that unless the source says `insecure: true`).
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from engine.errors import ConduitError


class ServerTls(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    cert: Annotated[str, Meta(description="PEM certificate (chain) this listener presents")]
    key: Annotated[str, Meta(description="PEM private key of that certificate")]
    client_ca: Annotated[
        str | None,
        Meta(description="PEM CA bundle; when set, clients must present a certificate "
                         "signed by it (mutual TLS)"),
    ] = None


class ClientTls(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ca: Annotated[
        str | None, Meta(description="PEM CA bundle to verify the receiver (default: system)")
    ] = None
    cert: Annotated[str | None, Meta(description="PEM client certificate, for mutual TLS")] = (
        None
    )
    key: Annotated[str | None, Meta(description="PEM private key of the client certificate")] = (
        None
    )
    server_name: Annotated[
        str | None, Meta(description="name to verify in the receiver's certificate "
                                     "(default: the host)")
    ] = None


def server_context(cfg: ServerTls) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context.load_cert_chain, cfg.cert, cfg.key)
    if cfg.client_ca:
        _load(context.load_verify_locations, cfg.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(cfg: ClientTls) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.ca:
        _load(context.load_verify_locations, cfg.ca)
    if cfg.cert:
        _load(context.load_cert_chain, cfg.cert, cfg.key)
    return context


def loopback(host: str) -> bool:
    """Whether binding `host` keeps a listener on this machine: 127.0.0.0/8, ::1 or
    localhost. 0.0.0.0, :: and any other name reach the network."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposed(host: str, tls: ServerTls | None) -> bool:
    """Whether a listener on `host` would take PHI and credentials off the network in
    clear."""
    return tls is None and not loopback(host)


def _load(method: Any, *files: str | None) -> None:
    try:
        method(*files)
    except (OSError, ssl.SSLError) as exc:
        raise ConduitError(f"TLS: cannot load {', '.join(f for f in files if f)}: {exc}"
                           ) from None


def peer_subject(transport: Any) -> str:
    """The client certificate's subject as `CN=...,O=...`, or "" without one."""
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return ""
    parts = [f"{_SHORT.get(k, k)}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(parts)


# Attribute names as certificates are usually written (RFC 4514).
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
          "domainComponent": "DC", "userId": "UID"}
