"""Keys on disk, rotation, the environment key, sealing and pseudonyms."""

import base64
import os
import stat

import pytest

from engine.errors import KeyError_
from engine.security.crypto import Vault
from engine.security.keys import KeyRing, rotate


def test_first_run_creates_private_key_files(tmp_path):
    folder = tmp_path / "keys"
    ring = KeyRing.load(folder, env={})
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["audit.key", f"{ring.current}.key", "pseudonym.key"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KeyRing.load(folder, env={})
    assert (again.current, again.pseudonym, again.audit) == (ring.current, ring.pseudonym,
                                                             ring.audit)


def test_key_file_readable_by_others_is_refused(tmp_path):
    ring = KeyRing.load(tmp_path, env={})
    os.chmod(tmp_path / f"{ring.current}.key", 0o644)
    with pytest.raises(KeyError_, match="chmod 600"):
        KeyRing.load(tmp_path, env={})


def test_rotation_keeps_old_records_readable(tmp_path):
    old = Vault(KeyRing.load(tmp_path, env={}))
    old_key, sealed = old.seal(b"MSH|old", "rec1")
    new_id = rotate(tmp_path)
    new = Vault(KeyRing.load(tmp_path, env={}))
    assert new.key_id == new_id != old_key
    assert new.open(old_key, sealed, "rec1") == b"MSH|old"
    assert new.seal(b"x", "rec2")[0] == new_id
    assert new.pseudonym("MRN1") == old.pseudonym("MRN1")  # pseudonyms survive rotation


def test_environment_key_means_no_key_on_disk(tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    ring = KeyRing.load(tmp_path / "keys", env={"CONDUIT_KEY": key})
    assert ring.current.startswith("env-")
    assert not (tmp_path / "keys").exists()
    with pytest.raises(KeyError_, match="32 bytes"):
        KeyRing.load(tmp_path / "keys", env={"CONDUIT_KEY": base64.b64encode(b"short").decode()})


def test_sealed_content_is_bound_to_its_record(tmp_path):
    vault = Vault(KeyRing.load(tmp_path, env={}))
    key_id, sealed = vault.seal(b"MSH|secret", "rec1")
    assert b"secret" not in sealed
    with pytest.raises(KeyError_, match="authentication"):
        vault.open(key_id, sealed, "rec2")  # moved to another row
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(KeyError_, match="authentication"):
        vault.open(key_id, tampered, "rec1")


def test_pseudonyms_are_keyed_and_stable(tmp_path):
    a = Vault(KeyRing.load(tmp_path / "a", env={}))
    b = Vault(KeyRing.load(tmp_path / "b", env={}))
    assert a.pseudonym("MRN1") == a.pseudonym(" MRN1 ")
    assert a.pseudonym("MRN1") != a.pseudonym("MRN2")
    assert a.pseudonym("MRN1") != b.pseudonym("MRN1")  # another key, another pseudonym
    assert "MRN1" not in a.pseudonym("MRN1")
    assert a.pseudonym(None) is None
