"""The cluster's :class:`acl.revocation.EdgeClaim`: one node announces each validity-window edge."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["RedisEdgeClaim"]

log = logging.getLogger(__name__)


class RedisEdgeClaim:
    """Every node passes a rule's validity-window edge in its own sweep; the first to claim the
    edge on Redis tells the consoles (the event stream is shared). Redis away: announce (twice
    beats never)."""

    def __init__(self, client: Any, node_id: str, timeout_s: float) -> None:
        self.client = client
        self.node_id = node_id
        self.timeout_s = timeout_s

    async def claim(self, key: str) -> bool:
        """True if this node claimed the edge ``key`` first (or Redis could not be asked)."""
        try:
            claim = self.client.set(f"liandong:window-edge:{key}", self.node_id, nx=True, px=600_000)
            return bool(await asyncio.wait_for(claim, self.timeout_s))
        except Exception as e:
            log.debug("cluster: window edge not claimed (%s); announcing it here", type(e).__name__)
            return True
