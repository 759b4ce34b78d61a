"""Encryption at rest for secrets (camera credentials, alarm-source secrets).

The key lives in ``<data_dir>/keys/secret.key`` (created on first use, mode 0600). Values are
Fernet tokens (AES-128-CBC + HMAC-SHA256), so a tampered value fails to decrypt instead of
yielding garbage.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["SecretBox", "SecretBoxError"]


class SecretBoxError(Exception):
    """A secret could not be decrypted (wrong key or tampered value)."""


class SecretBox:
    """Encrypts and decrypts short secrets with the data directory's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._fernet = Fernet(key)

    def derive_key(self, purpose: str) -> bytes:
        """A separate 32-byte key for ``purpose`` (HMAC signing), derived from the master key."""
        return hmac.new(self._key, purpose.encode("utf-8"), hashlib.sha256).digest()

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        """Load the key from the data dir, creating it (0600) on first run."""
        key_dir = data_dir / "keys"
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = key_dir / "secret.key"
        if not path.exists():
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
        return cls(path.read_bytes().strip())

    def encrypt(self, plaintext: str) -> str:
        """Encrypt a text secret; the result is ASCII and safe to store."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a value made by :meth:`encrypt`."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as e:
            raise SecretBoxError("secret could not be decrypted") from e
