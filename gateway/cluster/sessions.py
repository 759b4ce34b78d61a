"""The cluster-wide session directory: every node's open sessions in one Redis hash.

Each node writes its sessions to ``liandong:sessions`` (id -> JSON with the node id) as they open
and end; the admin listing reads the hash and keeps the sessions of live nodes only, so a killed
node's sessions vanish with its heartbeat. Ending a session on another node is a control message
to that node ("end session X"); the node that holds the transport closes it and audits the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from redis.exceptions import RedisError

from gateway.cluster.bus import ControlBus
from gateway.cluster.ownership import CameraOwnership
from gateway.sessions import Session, SessionRegistry

__all__ = ["SessionDirectory"]

log = logging.getLogger(__name__)


class SessionDirectory:
    """List and end sessions across nodes (the local :class:`SessionRegistry` does the work)."""

    def __init__(
        self,
        client: Any,
        local: SessionRegistry,
        bus: ControlBus,
        nodes: CameraOwnership,
        key: str = "liandong:sessions",
    ) -> None:
        self.r = client
        self.local = local
        self.bus = bus
        self.nodes = nodes
        self.node_id = bus.node_id
        self.key = key
        self._tasks: set[asyncio.Task[Any]] = set()
        local.on_open.append(self._opened)
        local.on_end.append(self._ended)
        bus.handlers["end_session"] = self._end_here
        bus.handlers["end_sessions"] = self._end_many_here
        bus.on_reconnect.append(self.republish)

    # -- mirroring -----------------------------------------------------------------------------
    def _record(self, s: Session) -> str:
        return json.dumps({**s.owner(), "node": self.node_id})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _opened(self, s: Session) -> None:
        self._spawn(self._write(self.r.hset(self.key, s.id, self._record(s))))

    def _ended(self, s: Session) -> None:
        self._spawn(self._write(self.r.hdel(self.key, s.id)))

    @staticmethod
    async def _write(aw: Any) -> None:
        try:
            await asyncio.wait_for(aw, 2.0)
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("cluster sessions: directory write failed (%s); resynchronised on reconnect", type(e).__name__)

    async def republish(self) -> None:
        """Replace this node's entries with its open sessions (at start and after Redis came back)."""
        rows = await self.r.hgetall(self.key)
        mine = [k for k, v in rows.items() if json.loads(v).get("node") == self.node_id]
        async with self.r.pipeline(transaction=True) as p:
            if mine:
                p.hdel(self.key, *mine)
            for s in self.local.list():
                p.hset(self.key, s.id, self._record(s))
            await p.execute()

    # -- the admin's view ----------------------------------------------------------------------
    async def list(self, *, user_id: int | None = None, camera_id: str | None = None) -> list[dict[str, Any]]:
        """Open sessions on live nodes, oldest first."""
        rows = await self.r.hgetall(self.key)
        live = await self.nodes.live_nodes()
        out = []
        for v in rows.values():
            d = json.loads(v)
            if d.get("node") not in live:
                continue  # the node died: its sessions died with it
            if (user_id is None or d["user_id"] == user_id) and (camera_id is None or d["camera_id"] == camera_id):
                d.pop("credential_ref", None)  # who may end it: not for listings
                out.append(d)
        return sorted(out, key=lambda d: d["started"])

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """One open session on a live node (with ``credential_ref``: who may end it)."""
        s = self.local.get(session_id)
        if s is not None:
            return {**s.owner(), "node": self.node_id}
        raw = await self.r.hget(self.key, session_id)
        if raw is None:
            return None
        d: dict[str, Any] = json.loads(raw)
        return d if d.get("node") in await self.nodes.live_nodes() else None

    async def end(self, session_id: str, reason: str) -> bool:
        """End a session wherever it runs."""
        if self.local.get(session_id) is not None:
            return await self.local.end(session_id, reason)
        d = await self.get(session_id)
        if d is None:
            return False
        return await self.bus.publish("end_session", node=d["node"], session_id=session_id, reason=reason)

    async def end_sessions(self, user_id: int | None, camera_id: str | None, reason: str) -> int:
        """End every matching session on every node; returns how many were listed."""
        n = len(await self.list(user_id=user_id, camera_id=camera_id))
        await self.local.end_sessions(user_id, {camera_id} if camera_id else None, reason)
        await self.bus.publish("end_sessions", user_id=user_id, camera_id=camera_id, reason=reason)
        return n

    async def _end_here(self, msg: dict[str, Any]) -> None:
        if msg.get("node") == self.node_id:
            await self.local.end(str(msg.get("session_id")), str(msg.get("reason", "ended by admin"))[:200])

    async def _end_many_here(self, msg: dict[str, Any]) -> None:
        uid, cam = msg.get("user_id"), msg.get("camera_id")
        if uid is None and cam is None:
            return  # never "end everything" from a message
        await self.local.end_sessions(
            uid if isinstance(uid, int) else None,
            {cam} if isinstance(cam, str) else None,
            str(msg.get("reason", "ended by admin"))[:200],
        )

    async def stop(self) -> None:
        """Wait briefly for pending directory writes."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(list(self._tasks), timeout=2)
