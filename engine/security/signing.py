"""The engine's Ed25519 key for signing audit exports, so an auditor can check an export
on another machine with only the public key (the audit chain's HMAC key stays secret).

Kept beside the other keys as audit-signing.key (PKCS#8 PEM, 0600), created on first
use. With CONDUIT_KEY set (no keys on disk), it derives from that key like the pseudonym
and audit keys do, so it is the same on every host given the same CONDUIT_KEY.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import KeyError_

ENV_CONTENT_KEY = "CONDUIT_KEY"  # as engine.security.keys reads it

FILE_NAME = "audit-signing.key"


def signing_key(folder: str | Path, provider: str | None = None,
                env: dict[str, str] | None = None) -> Ed25519PrivateKey:
    """The engine's signing key: derived from CONDUIT_KEY with the env key provider
    (`keys.provider`, or none set and CONDUIT_KEY given), else read from (or created in)
    `folder`."""
    env = dict(os.environ if env is None else env)
    if provider == "env" or (provider is None and env.get(ENV_CONTENT_KEY)):
        if not env.get(ENV_CONTENT_KEY):
            raise KeyError_(f"the env key provider needs {ENV_CONTENT_KEY}")
        try:
            master = base64.b64decode(env[ENV_CONTENT_KEY], validate=True)
        except ValueError as exc:
            raise KeyError_(f"{ENV_CONTENT_KEY} is not valid base64") from exc
        seed = HKDF(hashes.SHA256(), 32, salt=None, info=b"conduit audit export signing"
                    ).derive(master)
        return Ed25519PrivateKey.from_private_bytes(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / FILE_NAME
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        except OSError as exc:  # a read-only keys folder, say
            raise KeyError_(f"cannot make {path}: {exc.strerror}; make it once where the "
                            "keys folder is writable (conduit audit public-key)") from None
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(f"{path} is readable by other users; run: chmod 600 {path}")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path} does not hold an Ed25519 private key")
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: names the key in an export."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(raw)
    return digest.finalize().hex()


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise KeyError_("the public key file is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_("the public key is not an Ed25519 key")
    return key


def verifies(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True
