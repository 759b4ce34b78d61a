"""Secrets are encrypted with a key created once in the data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from storage.secretbox import SecretBox, SecretBoxError


def test_roundtrip_and_key_persistence(tmp_path: Path) -> None:
    box = SecretBox.from_data_dir(tmp_path)
    token = box.encrypt("admin:p@ss 中文")
    assert "p@ss" not in token
    assert SecretBox.from_data_dir(tmp_path).decrypt(token) == "admin:p@ss 中文"
    key = tmp_path / "keys" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_other_key_or_tampering_fails(tmp_path: Path) -> None:
    token = SecretBox.from_data_dir(tmp_path / "a").encrypt("x")
    with pytest.raises(SecretBoxError):
        SecretBox.from_data_dir(tmp_path / "b").decrypt(token)
    with pytest.raises(SecretBoxError):
        SecretBox.from_data_dir(tmp_path / "a").decrypt(token[:-4] + "AAAA")


def test_derived_keys_differ_by_purpose(tmp_path: Path) -> None:
    box = SecretBox.from_data_dir(tmp_path)
    assert box.derive_key("a") != box.derive_key("b")
    assert len(box.derive_key("a")) == 32
