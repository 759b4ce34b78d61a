"""The RTSP server's gate: who is asking (RTSP Digest, ``Kind.rtsp_digest``) and whether they may
pull a camera, decided here as every other permission is.

The RTSP server (:mod:`gateway.rtsp`) knows the protocol; it hands this gate the Digest answer it
read and the camera a request names, on DESCRIBE and again on SETUP, and refuses what the gate
refuses. Denials are audited like the HTTP guards' (``denied``); requests without a valid
credential are counted and audited in aggregate per address (:mod:`gateway.refusals`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

from acl.audit import AuditLog
from acl.credentials import Kind
from acl.digest import DigestAnswer, DigestPasswords
from acl.identity import Subject
from acl.models import User
from gateway.metrics import Metrics
from gateway.policy.rules import CameraAccess
from gateway.refusals import RefusalAudit
from storage.db import Database

__all__ = ["LIVE_ACTION", "RtspGate"]

# Pulling a camera's live stream over RTSP is watching it live, as WebRTC and HLS viewers do.
LIVE_ACTION = "view_live"
DepartmentsOf = Callable[[User], Awaitable[frozenset[str]]]


class RtspGate:
    """Authenticates RTSP requests (Digest) and decides camera pulls (the ACL's ``view_live``)."""

    def __init__(
        self,
        db: Database,
        passwords: DigestPasswords,
        departments_of: DepartmentsOf,
        cameras: CameraAccess,
        audit: AuditLog,
        refusals: RefusalAudit,
        metrics: Metrics,
        *,
        realm: str,
        nonce_key: bytes,
        nonce_ttl_s: float,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.departments_of = departments_of
        self.cameras = cameras
        self.audit = audit
        self.refusals = refusals
        self.metrics = metrics
        self.realm = realm
        self._nonce_key = nonce_key
        self.nonce_ttl_s = nonce_ttl_s
        # Digest checks touch the database (the user's live logins): a flood of guesses waits here
        # instead of taking every database connection from the HTTP side.
        self._checks = asyncio.Semaphore(4)

    # -- nonces: stateless, signed, with their issue time -------------------------------------
    def nonce(self) -> str:
        """A fresh nonce for a challenge."""
        stamp = f"{int(time.time()):x}.{secrets.token_hex(4)}"
        return f"{stamp}.{self._sign(stamp)}"

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._nonce_key, stamp.encode(), hashlib.sha256).hexdigest()[:20]

    def nonce_state(self, nonce: str) -> str:
        """``fresh``, ``stale`` (ours, older than ``nonce_ttl_s``) or ``bad`` (not ours)."""
        stamp, _, sig = nonce.rpartition(".")
        if not stamp or len(nonce) > 80 or not hmac.compare_digest(sig, self._sign(stamp)):
            return "bad"
        try:
            issued = int(stamp.split(".", 1)[0], 16)
        except ValueError:
            return "bad"
        return "fresh" if time.time() - issued <= self.nonce_ttl_s else "stale"

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value: Digest only (Basic would send the password in clear: no TLS here)."""
        return f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm="MD5"' + (
            ", stale=TRUE" if stale else ""
        )

    # -- who is asking ---------------------------------------------------------------------------
    async def authenticate(self, method: str, answer: DigestAnswer | None, address: str | None) -> Subject | None:
        """The subject whose login's RTSP password made ``answer`` (for ``method``), or None (counted
        and audited in aggregate). The nonce's freshness is the caller's business (it knows which
        nonces a connection already used)."""
        problem = "no credentials"
        if answer is not None:
            problem = "RTSP Digest answer does not match a live login"
            if answer.realm == self.realm:
                async with self._checks, self.db.session() as s:
                    found = await self.passwords.find(s, method, answer)
                if found is not None:
                    return Subject(
                        user_id=found.user.id,
                        username=found.user.username,
                        role=found.user.role,
                        departments=await self.departments_of(found.user),
                        token_id=found.token_id,
                        credential=Kind.rtsp_digest,
                        expires_at=found.expires_at,
                    )
        self.refused(address, problem, method)
        return None

    def refused(self, address: str | None, problem: str, method: str) -> None:
        """Count (and audit in aggregate) a request refused for lack of a valid credential."""
        self.metrics.denials.labels("unauthenticated").inc()
        self.refusals.note("unauthenticated", address, f"{problem}: RTSP {method[:16]}", detail=problem)

    # -- what they may pull ----------------------------------------------------------------------
    async def may_pull(self, subject: Subject, camera_id: str, address: str | None, method: str) -> bool:
        """Whether ``subject`` may pull ``camera_id`` live now; a refusal is audited."""
        if self.cameras.authorize(subject, LIVE_ACTION, camera_id):
            return True
        self.metrics.denials.labels(LIVE_ACTION).inc()
        await self.audit.record(
            "denied",
            subject=subject,
            action=LIVE_ACTION,
            camera_id=camera_id,
            address=address,
            path=f"RTSP {method} /cameras/{camera_id}",
        )
        return False
