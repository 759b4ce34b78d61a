"""Revocation: ending the open streams a change took away, and telling consoles when a rule's
validity window opens or closes by itself."""

from __future__ import annotations

import hashlib
import logging
import math
import time
import weakref
from collections.abc import Sequence
from typing import Protocol

from acl.decider import AccessDecider
from acl.identity import Subject
from acl.index import Rule
from acl.notices import PolicyNotices
from acl.policy import Change, PolicyState
from acl.preview import affected_users
from acl.sessions import OpenSession, SessionTerminator

__all__ = ["EdgeClaim", "LocalEdgeClaim", "StreamRevoker", "ValidityWindows"]

log = logging.getLogger(__name__)


class StreamRevoker:
    """Ends every open stream whose viewer may no longer see the camera.

    ``sessions`` are the holders of viewer sessions, read at every sweep (the gateway's registry
    joins the sequence once built).
    """

    def __init__(self, decider: AccessDecider, sessions: Sequence[SessionTerminator]) -> None:
        self.decider = decider
        self.sessions = sessions

    def viewer(self, s: OpenSession) -> Subject | None:
        """The session's viewer as the policy sees them now (role and departments may have changed)."""
        st = self.decider.state
        if st is not None and s.user_id in st.inactive:
            return None
        role = st.user_roles.get(s.user_id) if st is not None else None
        if role is not None:
            return self.decider.subject_for(s.user_id, s.username, role)
        return s.subject if isinstance(s.subject, Subject) else None

    async def enforce(self, reason: str) -> int:
        """End every open stream whose viewer may no longer see the camera; returns how many."""
        ended = 0
        for term in list(self.sessions):
            lost: dict[int, set[str]] = {}
            for s in term.list():
                subject = self.viewer(s)
                if subject is None or not self.decider.authorize(subject, "view_live", s.camera_id):
                    lost.setdefault(s.user_id, set()).add(s.camera_id)
            for uid, cams in lost.items():
                ended += await term.end_sessions(uid, cams, f"permission withdrawn: {reason}")
        return ended


class EdgeClaim(Protocol):
    """Which node announces a validity-window edge that every node passes (keyed by the edge)."""

    async def claim(self, key: str) -> bool:
        """True if this node is the one to announce the edge ``key``."""
        ...


class LocalEdgeClaim:
    """A single gateway announces every edge it passes."""

    async def claim(self, key: str) -> bool:
        """Always this node."""
        return True


class ValidityWindows:
    """Tells consoles about validity windows that opened or closed since the last look: the same
    ``policy.changed`` (same audience) as an edit of those rules.

    A rule's answer changes by itself at its window's edges; streams are ended by the sweep, and
    this lets the consoles of the users it reaches refresh their camera lists at once too.
    """

    def __init__(self, decider: AccessDecider, notices: PolicyNotices, edges: EdgeClaim) -> None:
        self.decider = decider
        self.notices = notices
        self.edges = edges
        # Edges (a rule's start or end) passed since ``_seen`` are news; none can come before
        # ``_next`` while the rules are the ones looked at (``_rules``: the state, weakly, so a
        # replaced policy is not kept alive, and its revision).
        self._seen = time.time()
        self._next = -math.inf
        self._rules: tuple[weakref.ref[PolicyState] | None, int] = (None, -1)

    async def passed(self, now: float | None = None) -> int:
        """Announce the edges passed since the last look; returns how many passed."""
        st = self.decider.state
        now = time.time() if now is None else now
        since, self._seen = self._seen, now
        if st is None:
            return 0
        looked, revision = self._rules
        if looked is None or looked() is not st or revision != st.revision:
            self._rules, self._next = (weakref.ref(st), st.revision), -math.inf  # the rules changed: look again
        if now < self._next:
            return 0
        passed: list[tuple[Rule, float]] = []
        nxt = math.inf
        for r in st.rules:
            for edge in (r.nbf, r.exp):
                if since < edge <= now:
                    passed.append((r, edge))
                elif now < edge < nxt:
                    nxt = edge
        self._next = nxt
        if not passed:
            return 0
        # One claim per edge time (an incident's grants all end together): the same key on every
        # node whose policy has the same rules, and one Redis call, not one per rule.
        by_edge: dict[float, list[Rule]] = {}
        for r, edge in passed:
            by_edge.setdefault(edge, []).append(r)
        announce: list[Rule] = []
        for edge, rules in by_edge.items():
            names = sorted(f"{r.rule_id}:{r.sub}:{r.obj}:{r.act}:{r.eft}" for r in rules)
            key = hashlib.sha256("|".join([repr(edge), *names]).encode()).hexdigest()[:32]
            if await self.edges.claim(key):
                announce += rules
            opened = sum(1 for r in rules if r.nbf == edge)
            log.info("validity windows: %d opened, %d closed (rules %s)", opened, len(rules) - opened, names[:5])
        if announce:
            changes = [Change("window", "rule", {"ptype": "p", "v0": r.sub}) for r in announce]
            subjects = self.decider.subjects
            users = affected_users(changes, announce, subjects, subjects)
            self.notices.announce(st.revision, None if users is None else frozenset(users))
        return len(passed)
