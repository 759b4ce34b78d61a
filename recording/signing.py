"""The gateway's evidence key (Ed25519, ``<data_dir>/keys/evidence-ed25519.pem``) and signatures over
canonical JSON."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["EvidenceKey", "canonical", "public_key_b64", "verify_signature"]

KEY_FILE = "evidence-ed25519.pem"


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the document without its ``signature``, keys sorted, no spaces."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw public key, base64."""
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def verify_signature(doc: dict[str, Any], public_b64: str) -> bool:
    """Whether ``doc["signature"]`` is the key's signature over :func:`canonical` of ``doc``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        key.verify(base64.b64decode(str(doc.get("signature", ""))), canonical(doc))
    except (InvalidSignature, ValueError):
        return False
    return True


class EvidenceKey:
    """Signs export manifests; made on first use, readable only by the gateway's user."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / KEY_FILE
        self._key: Ed25519PrivateKey | None = None

    def _load(self) -> Ed25519PrivateKey:
        if self._key is None:
            if self.path.exists():
                key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise ValueError(f"{self.path}: not an Ed25519 key")
                self._key = key
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                key = Ed25519PrivateKey.generate()
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                tmp = self.path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                self._key = key
        return self._key

    def public_b64(self) -> str:
        """The public key, base64 (what a manifest names and a verifier trusts)."""
        return public_key_b64(self._load().public_key())

    def sign(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with its ``public_key`` and ``signature``."""
        out = {**doc, "public_key": self.public_b64()}
        out["signature"] = base64.b64encode(self._load().sign(canonical(out))).decode()
        return out
