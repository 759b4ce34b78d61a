"""Policy changes: stored (one revision each), patched into the running index, audited, announced,
and enforced on open streams; reloads after changes made elsewhere."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from acl.audit import AuditLog
from acl.compiler import PolicyCompiler, user_keys
from acl.decider import AccessDecider
from acl.models import Role
from acl.notices import PolicyNotices
from acl.policy import Applied, PolicyStore, RuleSpec
from acl.preview import affected_users
from acl.revocation import StreamRevoker

__all__ = ["PolicyChanges"]

log = logging.getLogger(__name__)


class PolicyChanges:
    """Every change to what the decider answers: stored changes (rules, memberships, groups,
    departments, incident grants, rollbacks), users' system roles, inventory changes and reloads."""

    def __init__(
        self,
        policy: PolicyStore,
        decider: AccessDecider,
        compiler: PolicyCompiler,
        audit: AuditLog,
        revoker: StreamRevoker,
        notices: PolicyNotices,
    ) -> None:
        self.policy = policy
        self.decider = decider
        self.compiler = compiler
        self.audit = audit
        self.revoker = revoker
        self.notices = notices

    @property
    def revision(self) -> int:
        """The revision the decider answers from (0 before the first load)."""
        st = self.decider.state
        return st.revision if st is not None else 0

    async def change(
        self,
        author: str,
        what: str,
        op: Callable[[], Awaitable[Applied]],
        reason: str = "",
        incident_id: str | None = None,
    ) -> Applied:
        """Run one stored change (``op``, a :class:`PolicyStore` call), patch the index, audit it,
        and end streams that lost access."""
        d = self.decider
        async with self.compiler.writing:
            applied = await op()
            st = d.state
            assert st is not None
            if applied.revision == 0:
                return applied  # nothing was written
            reached: frozenset[int] | None = None
            stranger = any(  # a user created outside this process (``liandong users add``): not in the index yet
                c.kind == "membership" and c.row["user_id"] not in st.user_roles and c.row["user_id"] not in st.inactive
                for c in applied.changes
            )
            if applied.revision != st.revision + 1 or stranger:
                # Someone else (the CLI, another node) changed the policy or the users in between: reload all.
                await self.compiler.reload_policy()
                self.notices.reloaded()
            else:
                before_rules, before_keys = list(st.rules), dict(d.subjects)
                self.compiler.patch(applied.changes, applied.revision)
                users = affected_users(applied.changes, [*before_rules, *st.rules], before_keys, d.subjects)
                reached = None if users is None else frozenset(users)
        await self.notices.stored(what)  # other nodes first: the audit write below takes a while
        detail = f"revision {applied.revision}: {what}" + (f" ({reason})" if reason else "")
        await self.audit.record(
            "policy_change", username=author, action=what.split(" ", 1)[0], detail=detail, incident_id=incident_id
        )
        self.notices.announce(self.revision, reached)
        await self.revoker.enforce(what)
        return applied

    async def add_rule(self, author: str, spec: RuleSpec, reason: str = "") -> tuple[int, int]:
        """Store a rule (one revision) and apply it at once; returns (rule id, revision)."""
        what = f"{'deny' if spec.effect == 'deny' else 'grant'} {spec.action} on {spec.target} to {spec.subject}"
        applied = await self.change(author, what, lambda: self.policy.add_rule(author, spec, reason), reason)
        return applied.rule_ids[0], applied.revision

    async def remove_rule(self, author: str, rule_id: int, reason: str = "") -> int:
        """Remove a rule (one revision), apply at once, end streams that lost access."""
        applied = await self.change(
            author, f"rule {rule_id} removed", lambda: self.policy.remove_rule(author, rule_id, reason), reason
        )
        return applied.revision

    async def grant_incident(
        self,
        author: str,
        incident_id: str,
        departments: list[str],
        cameras: list[str],
        until: dt.datetime,
        action: str = "view_live",
    ) -> list[int]:
        """Time-limited grants tied to an incident, in one revision; they expire by themselves.

        Grants the incident already has are kept (calling again with more cameras adds only those).
        """
        tag = f"incident:{incident_id}"
        specs = [
            RuleSpec(f"dept:{d}", f"cam:{c}", action, "allow", None, until, tag)
            for d in dict.fromkeys(departments)
            for c in dict.fromkeys(cameras)
        ]
        applied = await self.change(
            author,
            f"incident grant {incident_id}: {len(specs)} rule(s) until {until.isoformat()}",
            lambda: self.policy.add_rules(author, specs, f"incident {incident_id}"),
            incident_id=incident_id,
        )
        return applied.rule_ids

    async def revoke_incident(self, author: str, incident_id: str) -> int:
        """End an incident's grants now (one revision); returns how many rules were removed."""
        ids = [rid for rid, _ in await self.policy.rules_tagged(f"incident:{incident_id}")]
        if not ids:
            return 0
        applied = await self.change(
            author,
            f"incident revoke {incident_id}",
            lambda: self.policy.remove_rules(author, ids, f"incident {incident_id} closed", missing_ok=True),
            incident_id=incident_id,
        )
        return len(applied.changes)

    async def user_changed(self, user_id: int, role: Role, active: bool) -> None:
        """A user was created, or their system role or active flag changed."""
        st = self.decider.state
        assert st is not None
        if active:
            st.user_roles[user_id] = role.value
            st.inactive.discard(user_id)
        else:
            st.user_roles.pop(user_id, None)
            st.inactive.add(user_id)
        keys = user_keys(st, user_id)
        if keys is None:
            self.decider.subjects.pop(user_id, None)
        else:
            self.decider.subjects[user_id] = keys
        await self.notices.stored("user changed")
        self.notices.announce(self.revision, frozenset({user_id}))
        await self.revoker.enforce("user changed")

    async def policy_changed(self, reason: str = "policy changed", author: str | None = None) -> None:
        """Reload the whole policy (after changes made outside :meth:`change`), end lost streams."""
        if author is not None:
            await self.audit.record("policy_change", username=author, detail=reason)
        async with self.compiler.writing:
            await self.compiler.reload_policy()
        self.notices.reloaded()
        await self.notices.stored(reason)
        self.notices.announce(self.revision)
        await self.revoker.enforce(reason)

    async def reload(self, reason: str, *, inventory: bool = False) -> int:
        """Reload the policy (and the inventory if asked) from the database after a change made by
        another node, and end streams that lost access; returns how many ended."""
        if inventory:
            await self.compiler.load_inventory()
        async with self.compiler.writing:
            await self.compiler.reload_policy()
        self.notices.reloaded()
        # No policy.changed here: the node that made the change announced it on the shared event stream.
        return await self.revoker.enforce(reason)

    async def catch_up(self) -> bool:
        """Reload when the stored policy moved on without us (the CLI, another node); False when
        it had not (or a change is being made here right now)."""
        st = self.decider.state
        if st is None or self.compiler.writing.locked():
            return False
        async with self.compiler.writing:
            latest = await self.policy.latest_revision()
            if latest == self.revision:
                return False
            log.info("policy revision %s appeared outside this process: reloading", latest)
            await self.compiler.reload_policy()
        self.notices.reloaded()
        self.notices.announce(self.revision)
        await self.revoker.enforce("policy changed")
        return True

    async def inventory_changed(self) -> None:
        """Cameras changed: dynamic groups and the location rule follow."""
        await self.compiler.load_inventory()
        async with self.compiler.writing:
            self.compiler.compile()
        await self.revoker.enforce("camera inventory changed")
