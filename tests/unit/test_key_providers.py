"""engine/security/key_providers.py and the key ring's refresh: files, the environment,
the file-based KMS (envelope encryption), activation and reloading a key made by
another process."""

from __future__ import annotations

import base64
import os
import stat
import time

import pytest

from engine.config.keys import KeysConfig
from engine.errors import KeyError_
from engine.security.crypto import Vault
from engine.security.key_providers import EnvKeys, FileKeys, FileKms, key_time, newest_active
from engine.security.keys import KeyRing


def test_a_new_file_key_becomes_current_only_once_old_enough(tmp_path):
    keys = FileKeys(tmp_path / "keys")
    first = keys.current(activate_after=60)
    second = keys.create()
    assert keys.key_ids() == [first, second]
    assert keys.current(activate_after=60) == first  # every process loads it before use
    assert keys.current(activate_after=60, now=key_time(second) + 61) == second
    assert keys.current(activate_after=0) == second


def test_first_key_is_current_at_once(tmp_path):
    keys = FileKeys(tmp_path / "keys")
    assert keys.current(activate_after=3600) == keys.key_ids()[0]
    with pytest.raises(KeyError_, match="no content key"):
        newest_active([], 0)


def test_a_retired_file_key_moves_aside_and_still_opens_old_backups(tmp_path):
    folder = tmp_path / "keys"
    keys = FileKeys(folder)
    old = keys.key_ids()[0]
    secret = keys.get(old)
    keys.create()
    keys.retire(old)
    assert old not in keys.key_ids()
    assert (folder / "retired" / f"{old}.key").exists()
    assert stat.S_IMODE((folder / "retired").stat().st_mode) == 0o700
    assert keys.get(old) == secret  # a restored backup's records still open
    keys.retire(old)  # a second engine retiring it too is no error


def test_environment_key_cannot_be_rotated_from_the_cli(tmp_path):
    master = os.urandom(32)
    keys = EnvKeys(base64.b64encode(master).decode(), tmp_path / "keys")
    assert keys.current(0).startswith("env-") and keys.get(keys.current(0)) == master
    with pytest.raises(KeyError_, match="CONDUIT_KEY"):
        keys.create()
    assert not (tmp_path / "keys").exists()


def test_kms_keeps_only_wrapped_data_keys_and_destroys_retired_ones(tmp_path):
    kms = FileKms(tmp_path / "kms")
    first = kms.key_ids()[0]
    data_key = kms.get(first)
    assert len(data_key) == 32
    wrapped = (tmp_path / "kms" / "data" / f"{first}.wrapped").read_bytes()
    assert data_key not in wrapped and base64.b64encode(data_key) not in wrapped
    for path in (tmp_path / "kms").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = FileKms(tmp_path / "kms")  # another process: same keys, unwrapped
    assert again.get(first) == data_key
    assert again.fixed("pseudonym") == kms.fixed("pseudonym") != kms.fixed("audit")
    second = kms.create()
    kms.retire(first)
    assert kms.key_ids() == [second]
    assert kms.get(first) is None  # crypto-shredded: nothing under it opens again


def test_kms_without_its_master_key_says_so(tmp_path):
    kms = FileKms(tmp_path / "kms")
    first = kms.key_ids()[0]
    master = tmp_path / "kms" / "master.key"
    os.remove(master)
    with pytest.raises(KeyError_, match=r"master\.key is missing"):
        FileKms(tmp_path / "kms")
    fd = os.open(master, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, base64.b64encode(os.urandom(32)))
    os.close(fd)
    with pytest.raises(KeyError_, match=f"data key {first} does not unwrap"):
        FileKms(tmp_path / "kms").get(first)


def test_kms_ring_seals_and_opens_across_rotation(tmp_path):
    kms = FileKms(tmp_path / "kms")
    vault = Vault(KeyRing.open(kms))
    old_id, sealed = vault.seal(b"MSH|kms", "rec1")
    new_id = kms.create()
    assert vault.keys.refresh() is True
    assert vault.seal(b"x", "rec2")[0] == new_id != old_id
    assert vault.open(old_id, sealed, "rec1") == b"MSH|kms"


def test_a_process_opens_a_record_under_a_key_it_has_not_polled_yet(tmp_path):
    """Another process switched first: the reader asks the provider before failing."""
    writer_ring = KeyRing.open(FileKeys(tmp_path / "keys"))
    reader_ring = KeyRing.open(FileKeys(tmp_path / "keys"))
    new_id = writer_ring.provider.create()
    writer_ring.refresh()
    key_id, sealed = Vault(writer_ring).seal(b"MSH|new", "rec1")
    assert key_id == new_id and new_id not in reader_ring.content
    assert Vault(reader_ring).open(key_id, sealed, "rec1") == b"MSH|new"
    assert reader_ring.current != new_id  # reading it does not make it current


def test_refresh_switches_after_activation_and_keeps_retired_keys_loaded(tmp_path):
    keys = FileKeys(tmp_path / "keys")
    ring = KeyRing.open(keys, activate_after=0.3)
    vault = Vault(ring)
    old = ring.current
    old_id, sealed = vault.seal(b"MSH|1", "rec1")
    new = keys.create()
    assert ring.refresh() is False
    assert new in ring.pending and vault.seal(b"x", "r")[0] == old
    time.sleep(0.35)
    assert ring.refresh() is True and ring.current == new and not ring.pending
    keys.retire(old)
    os.remove(tmp_path / "keys" / "retired" / f"{old}.key")  # destroyed, as a KMS does
    ring.refresh()
    assert ring.listed == [new]
    assert vault.open(old_id, sealed, "rec1") == b"MSH|1"  # until this process ends
    with pytest.raises(KeyError_, match=f"record rec1 needs content key {old}"):
        Vault(KeyRing.open(FileKeys(tmp_path / "keys"))).open(old_id, sealed, "rec1")


def test_activation_must_outlast_two_polls(tmp_path):
    with pytest.raises(ValueError, match=r"twice keys\.poll"):
        KeysConfig(poll=5.0, activate_after=6.0)
    from engine.config.loader import load_engine_config

    conf = tmp_path / "conduit.yaml"
    conf.write_text(f"data_dir: {tmp_path}\nkeys:\n  provider: kms\n  poll: 1s\n"
                    "  activate_after: 3s\n  retire_after: 1h\n")
    config = load_engine_config(conf, {}).keys
    assert (config.provider, config.poll, config.activate_after, config.retire_after) == (
        "kms", 1.0, 3.0, 3600.0)


def test_ring_for_config_uses_the_configured_provider(tmp_path):
    ring = KeyRing.for_config(KeysConfig(provider="kms"), tmp_path, env={})
    assert ring.provider.name == "kms" and (tmp_path / "kms" / "master.key").exists()
    assert not (tmp_path / "keys").exists()
    with pytest.raises(KeyError_, match="CONDUIT_KEY is not set"):
        KeyRing.for_config(KeysConfig(provider="env"), tmp_path, env={})
