"""AES-256-GCM for message content at rest, and keyed pseudonyms for patient ids.

Each sealed record is nonce || ciphertext+tag, with its key id stored beside it and the
record's own id as associated data, so a ciphertext moved to another row fails to open.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import KeyError_
from engine.security.keys import KeyRing

NONCE_BYTES = 12
PRUNED = "pruned"  # the key id of a record whose content retention removed
ABSENT = "absent"  # the key id of a record a queue entry names but the store lacks
# Key ids that seal nothing, and why opening such a record fails.
NOTHING_SEALED = {
    PRUNED: "its content was removed under its channel's retention",
    ABSENT: "it is not in the store (a database restored to a point before it?)",
}


class Vault:
    """Seals and opens content with the key ring; makes pseudonyms."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys
        self._ciphers: dict[str, AESGCM] = {}

    @property
    def key_id(self) -> str:
        return self.keys.current

    def seal(self, plaintext: bytes, record_id: str) -> tuple[str, bytes]:
        """Encrypt with the current key; returns (key id, sealed bytes)."""
        key_id = self.keys.current
        cipher = self._cipher(key_id)
        if cipher is None:
            raise KeyError_(f"the current key {key_id} is not loaded")
        nonce = os.urandom(NONCE_BYTES)
        return key_id, nonce + cipher.encrypt(nonce, plaintext, record_id.encode())

    def open(self, key_id: str, sealed: bytes, record_id: str) -> bytes:
        if key_id in NOTHING_SEALED:
            raise KeyError_(f"record {record_id} cannot be opened: {NOTHING_SEALED[key_id]}")
        cipher = self._cipher(key_id)
        if cipher is None:
            raise KeyError_(f"record {record_id} needs content key {key_id}, which the "
                            f"{self._provider_name()} key provider does not hold (retired "
                            "and destroyed, or the key folder is not this store's)")
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], record_id.encode())
        except InvalidTag as exc:
            raise KeyError_(f"record {record_id} failed authentication (altered or moved)") from exc

    def _cipher(self, key_id: str) -> AESGCM | None:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            key = self.keys.find(key_id)
            if key is None:
                return None
            cipher = self._ciphers[key_id] = AESGCM(key)
        return cipher

    def _provider_name(self) -> str:
        provider = self.keys.provider
        return provider.name if provider is not None else "configured"

    def patient_pseudonym(self, typed: str) -> str | None:
        """The pseudonym of an identifier as a person types it to search or report:
        "MRN123^^^HOSP^MR" and "http://hosp/mrn|MRN123" find what ingest keyed as
        "MRN123" (identifier_value)."""
        return self.pseudonym(identifier_value(typed))

    def pseudonym(self, identifier: str | None) -> str | None:
        """A stable keyed stand-in for a patient identifier: searchable by whoever holds
        the key and types the identifier, meaningless to anyone reading the tables."""
        if not identifier:
            return None
        digest = hmac.new(self.keys.pseudonym, identifier.strip().encode(), hashlib.sha256)
        return digest.hexdigest()[:32]


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def identifier_value(given: str) -> str:
    """The part of a typed identifier the engine turns into the pseudonym at ingest.

    Ingest keys the identifier's value alone, never its assigning authority: HL7v2
    PID-3's first component (its first subcomponent), FHIR Patient.identifier.value, X12
    NM109, NCPDP's identification text, each stripped. So "MRN123^^^HOSP^MR" and
    "http://hosp/mrn|MRN123" (a FHIR token) both come down to "MRN123"."""
    text = given.strip()
    if "|" in text:  # FHIR token: system|value
        text = text.rsplit("|", 1)[1]
    return text.split("^", 1)[0].split("&", 1)[0].strip()
