"""Who is told of policy changes: listeners the gateway subscribes (consoles, other nodes, logins)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

__all__ = ["PolicyNotices"]

log = logging.getLogger(__name__)


class PolicyNotices:
    """Listener lists told of policy changes; a listener's failure is logged, never raised."""

    def __init__(self) -> None:
        # The new revision and the users whose view it can change (None: anyone), after every
        # change that reaches the consoles (the gateway tells those consoles).
        self.on_policy_changed: list[Callable[[int, frozenset[int] | None], None]] = []
        # After a change is stored, a short reason (other gateway nodes learn of it this way).
        self.on_stored: list[Callable[[str], Awaitable[None]]] = []
        # After the policy and the users were read again from the database (a change made
        # elsewhere): the gateway checks every login again.
        self.on_reloaded: list[Callable[[], None]] = []

    def announce(self, revision: int, users: frozenset[int] | None = None) -> None:
        """Tell the consoles' listeners of ``revision``, reaching ``users`` (None: anyone)."""
        for listener in self.on_policy_changed:
            try:
                listener(revision, users)
            except Exception:  # a listener must not undo a committed change
                log.exception("policy-change listener failed")

    async def stored(self, what: str) -> None:
        """Tell the other nodes' listeners a change was stored."""
        for cb in self.on_stored:
            try:
                await cb(what)
            except Exception:  # telling others must not undo the change here
                log.exception("policy change listener failed")

    def reloaded(self) -> None:
        """Tell the listeners the policy and the users were read again."""
        for listener in self.on_reloaded:
            try:
                listener()
            except Exception:  # a listener must not stop the reload
                log.exception("policy-reload listener failed")
