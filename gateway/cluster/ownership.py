"""Camera ownership: one upstream pull per camera across the cluster, by leases in Redis.

Placement (``cluster.placement``): ``least_loaded`` (the default) or ``first``. A camera's first
reader arrives at some node (the one its load balancer picked). With ``first`` that node takes
the lease (``SET NX PX``) and pulls. With ``least_loaded`` it does so only while it holds fewer
than ``placement_slack`` cameras more than the least-loaded live node; otherwise it writes the
lease *in that node's name* and redirects the viewer there, where the node finds the lease already
its own and takes it (no second decision, so no ping-pong; if the viewer never arrives, the lease
lapses after ``lease_s``). Loads are the camera counts every node publishes with its heartbeat
(read at most every ``renew_s``, plus the placements this node made since). Why it matters: one
operator's video wall opens all its cameras through the one node his browser talks to, which
``first`` would pile onto that node. Cost: one redirect (a few ms) for the first viewer of a camera
placed elsewhere; later viewers are redirected to the owner either way. Nothing moves a camera
while it is watched (no rebalancing of running pulls). Each node renews all its leases in one
Lua call every ``renew_s`` (compare-and-extend: only a lease that still names this node is
extended; one that vanished, as after a Redis restart, is taken again), and publishes a heartbeat
key with its advertise URL and camera count that lapses after three missed renewals. A viewer
arriving while the lease names a node without a heartbeat (it died) waits in the request for that
lease to run out, then this node takes the camera.

Safety under partition: a lease is valid locally until ``sent + lease_s``, where ``sent`` is
when the last successful renewal was *sent*. A node that cannot renew stops pulling the camera
``renew_s + redis_timeout_s`` before that, so it is gone before Redis lets anyone else in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from streams import StreamUnavailable

__all__ = ["CameraOwnership", "OwnedElsewhere"]

log = logging.getLogger(__name__)

# KEYS = leases; ARGV = node id, lease ms. 1 = extended (or retaken after it vanished), 0 = lost.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not v then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS = lease; ARGV = node id. Deletes the lease only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class OwnedElsewhere(StreamUnavailable):
    """Another live node pulls this camera; serve the viewer there."""

    def __init__(self, camera_id: str, node_id: str, url: str) -> None:
        super().__init__(f"camera '{camera_id}' is served by node {node_id}")
        self.camera_id = camera_id
        self.node_id = node_id
        self.url = url


LostHandler = Callable[[str, str], Awaitable[None]]
SuspendHandler = Callable[[str, str], None]
ResumeHandler = Callable[[str], Awaitable[bool]]


class CameraOwnership:
    """Leases of the cameras this node pulls, and the node's heartbeat: the stream hub's
    :class:`streams.Ownership` on a cluster node.

    The stream hub calls :meth:`claim` before it opens a camera and :meth:`released` after it
    closes one; ``on_lost(camera_id, reason)`` runs when a lease could not be kept (the caller
    ends the camera's readers and upstream). With ``on_suspend`` and ``on_resume`` a lease that
    could not be renewed pauses the pull instead (the viewers wait) and resumes it when Redis
    confirms the lease again; ``on_resume`` answers False when the camera could not be resumed,
    and the lease is released. The three are given by the composition root.
    """

    may_refuse = True  # another node may hold the camera's lease

    def __init__(
        self,
        client: Any,
        node_id: str,
        advertise_url: str,
        *,
        lease_s: float = 3.0,
        renew_s: float = 0.5,
        timeout_s: float = 0.4,
        outage_grace_s: float = 15.0,
        prefix: str = "liandong:",
        placement: str = "least_loaded",
        placement_slack: int = 2,
        on_lost: LostHandler | None = None,
        on_suspend: SuspendHandler | None = None,
        on_resume: ResumeHandler | None = None,
    ) -> None:
        if placement not in ("least_loaded", "first"):
            raise ValueError("placement must be 'least_loaded' or 'first'")
        if placement_slack < 1:
            raise ValueError("placement_slack must be at least 1")
        self.r = client
        self.node_id = node_id
        self.advertise_url = advertise_url
        self.lease_ms = int(lease_s * 1000)
        # The heartbeat lapses sooner than a lease, so a viewer arriving after a node died is held
        # until the dead node's lease runs out (then served) instead of being sent to the dead node.
        self.heartbeat_ms = min(self.lease_ms, max(int(3 * renew_s * 1000), 1000))
        self.renew_s = renew_s
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.on_lost = on_lost
        # Without these, a lease that could not be renewed is lost (sessions end); with them the
        # pull pauses while the readers wait, and resumes when Redis confirms the lease again.
        self.on_suspend = on_suspend
        self.on_resume = on_resume
        self.outage_grace_s = outage_grace_s
        self._owned: dict[str, float] = {}  # camera -> monotonic time until which the lease surely holds
        self._suspended: dict[str, float] = {}  # camera -> when its pull was paused (Redis unreachable)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.redis_ok = True
        self.counts = {"taken": 0, "lost": 0, "paused": 0, "resumed": 0, "placed_elsewhere": 0}
        self.placement = placement
        self.placement_slack = placement_slack
        self._loads: dict[str, tuple[str, int]] = {}  # live node -> (url, cameras), as last read
        self._loads_at = -1e9

    # -- keys --------------------------------------------------------------------------------
    def _lease(self, camera_id: str) -> str:
        return f"{self.prefix}own:{camera_id}"

    def _node(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    @property
    def _nodes(self) -> str:
        return f"{self.prefix}nodes"

    async def _call(self, aw: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(aw, self.timeout_s)

    # -- the hub's side ------------------------------------------------------------------------
    def held(self) -> int:
        """Leases held now."""
        return len(self._owned)

    def paused(self) -> int:
        """Cameras whose pull is paused (Redis unreachable)."""
        return len(self._suspended)

    def owns(self, camera_id: str) -> bool:
        """Whether this node holds a (locally still valid) lease."""
        return self._owned.get(camera_id, 0.0) > time.monotonic()

    async def claim(self, camera_id: str) -> None:
        """Take the camera's lease, or raise :class:`OwnedElsewhere` naming the live owner.

        When the lease names a node that no longer heartbeats (it died), wait for the lease to
        expire (at most ``lease_s``) and take it. :class:`StreamUnavailable` when Redis is away.
        """
        if self.owns(camera_id):
            return
        deadline = time.monotonic() + self.lease_ms / 1000 + 1.0
        key = self._lease(camera_id)
        while True:
            sent = time.monotonic()
            try:
                if self.placement == "least_loaded" and await self._place_elsewhere(camera_id, key):
                    continue  # someone else took the camera meanwhile: look again
                ok = await self._call(self.r.set(key, self.node_id, nx=True, px=self.lease_ms))
                owner = self.node_id if ok else await self._call(self.r.get(key))
                owner = owner.decode() if isinstance(owner, bytes) else owner
                if owner == self.node_id:
                    if not ok:  # ours already: placed here by another node, a restart of this one, or a race
                        await self._call(self.r.pexpire(key, self.lease_ms))
                    self._owned[camera_id] = sent + self.lease_ms / 1000
                    self.counts["taken"] += 1
                    log.info("camera %s: lease taken by node %s", camera_id, self.node_id)
                    return
                if owner is not None:
                    info = await self._call(self.r.get(self._node(owner)))
                    if info is not None:
                        raise OwnedElsewhere(camera_id, owner, json.loads(info)["url"])
            except (RedisError, OSError, TimeoutError) as e:
                raise StreamUnavailable(f"cluster coordination unavailable ({type(e).__name__})") from None
            if time.monotonic() > deadline:
                raise StreamUnavailable(f"camera '{camera_id}' is still leased by a node that stopped answering")
            await asyncio.sleep(0.1)  # the owner is dead: its lease runs out within lease_s

    async def _place_elsewhere(self, camera_id: str, key: str) -> bool:
        """For a camera nobody owns: lease it to a less loaded node and raise :class:`OwnedElsewhere`
        naming it, or return False (this node takes it). True: the lease appeared meanwhile."""
        if await self._call(self.r.exists(key)):
            return False  # owned (or placed) already: the usual path finds out by whom
        target = await self._least_loaded(camera_id)
        if target is None:
            return False
        if not await self._call(self.r.set(key, target, nx=True, px=self.lease_ms)):
            return True
        url, n = self._loads[target]
        self._loads[target] = (url, n + 1)  # until the next read: a burst of claims spreads
        self.counts["placed_elsewhere"] += 1
        log.info("camera %s: placed on node %s (less loaded)", camera_id, target)
        raise OwnedElsewhere(camera_id, target, url)

    async def _least_loaded(self, camera_id: str) -> str | None:
        """The node to place a new camera on, if not this one."""
        if time.monotonic() - self._loads_at >= self.renew_s:
            beats = await asyncio.wait_for(self._heartbeats(), 2 * self.timeout_s)  # two calls
            loads = {i: (b["url"], int(b.get("cameras", 0))) for i, b in beats.items() if i != self.node_id}
            self._loads, self._loads_at = loads, time.monotonic()
        if not self._loads:
            return None
        mine = len(self._owned)
        # Fewest cameras first; among equals a per-camera hash spreads the choice.
        best = min(self._loads, key=lambda n: (self._loads[n][1], zlib.crc32(f"{n}/{camera_id}".encode())))
        return best if mine >= self._loads[best][1] + self.placement_slack else None

    def released(self, camera_id: str) -> None:
        """The hub closed the camera: give the lease back so another node may take it at once."""
        self._suspended.pop(camera_id, None)
        if self._owned.pop(camera_id, None) is None:
            return
        self._spawn(self._release_now(camera_id))

    async def _release_now(self, camera_id: str) -> None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._call(self._release(keys=[self._lease(camera_id)], args=[self.node_id]))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- renewal -------------------------------------------------------------------------------
    async def owner_of(self, camera_id: str) -> str | None:
        """The node holding the camera's lease (None when free)."""
        v = await self._call(self.r.get(self._lease(camera_id)))
        return v.decode() if isinstance(v, bytes) else v

    async def _heartbeats(self) -> dict[str, dict[str, Any]]:
        """Node id -> heartbeat (advertise URL, camera count) of every node with a current one."""
        ids = [i.decode() if isinstance(i, bytes) else i for i in await self.r.smembers(self._nodes)]
        if not ids:
            return {}
        vals = await self.r.mget([self._node(i) for i in ids])
        return {i: json.loads(v) for i, v in zip(ids, vals, strict=True) if v is not None}

    async def live_nodes(self) -> dict[str, str]:
        """Node id -> advertise URL of every node with a current heartbeat."""
        return {i: b["url"] for i, b in (await self._heartbeats()).items()}

    async def heartbeating(self, node_ids: list[str]) -> set[str]:
        """Those of ``node_ids`` with a current heartbeat."""
        if not node_ids:
            return set()
        vals = await self._call(self.r.mget([self._node(i) for i in node_ids]))
        return {i for i, v in zip(node_ids, vals, strict=True) if v is not None}

    async def renew_once(self) -> None:
        """Renew the heartbeat and every lease; hand lost cameras to ``on_lost``."""
        sent = time.monotonic()
        cams = list(self._owned)
        paused = list(self._suspended)
        keys = [self._lease(c) for c in cams + paused]
        try:
            async with self.r.pipeline(transaction=False) as p:
                beat = {"url": self.advertise_url, "cameras": len(self._owned)}
                p.set(self._node(self.node_id), json.dumps(beat), px=self.heartbeat_ms)
                p.sadd(self._nodes, self.node_id)
                await self._call(p.execute())
            results = []
            if keys:  # vanished leases (Redis restarted) are taken again, paused ones included
                results = await self._call(self._renew(keys=keys, args=[self.node_id, self.lease_ms]))
        except (RedisError, OSError, TimeoutError) as e:
            if self.redis_ok:
                log.warning("cluster: cannot renew leases (%s); cameras stop before their leases end", type(e).__name__)
            self.redis_ok = False
            self._expire_unrenewed()
            self._expire_paused()
            return
        if not self.redis_ok:
            log.info("cluster: Redis is back; leases renewed")
        self.redis_ok = True
        for cam, ok in zip(cams, results[: len(cams)], strict=True):
            if cam not in self._owned:
                continue  # released meanwhile
            if ok:
                self._owned[cam] = sent + self.lease_ms / 1000
            else:
                self._lose(cam, "another node took the camera over")
        for cam, ok in zip(paused, results[len(cams) :], strict=True):
            if self._suspended.pop(cam, None) is None:
                continue  # its readers left meanwhile
            if ok and self.on_resume is not None:
                self._owned[cam] = sent + self.lease_ms / 1000
                self.counts["resumed"] += 1
                log.info("camera %s: lease confirmed again; resuming the pull", cam)
                self._spawn(self._resume(cam, self.on_resume))
            else:
                self._lose(cam, "another node took the camera over while this one was cut off")

    async def _resume(self, camera_id: str, resume: ResumeHandler) -> None:
        try:
            if await resume(camera_id):
                return
        except Exception as e:  # e.g. the camera was deleted meanwhile
            log.warning("camera %s: could not resume (%s)", camera_id, type(e).__name__)
        self.released(camera_id)

    def _expire_unrenewed(self) -> None:
        # Stop early enough that the lease in Redis is still ours when the pull has ended.
        limit = time.monotonic() + self.renew_s + self.timeout_s + 0.1
        for cam, until in list(self._owned.items()):
            if until <= limit:
                reason = "lost contact with Redis; stopped pulling before the lease ended"
                if self.on_suspend is None:
                    self._lose(cam, reason)
                    continue
                self._owned.pop(cam, None)
                self._suspended[cam] = time.monotonic()
                self.counts["paused"] += 1
                log.warning("camera %s: pull paused (%s)", cam, reason)
                self.on_suspend(cam, reason)

    def _expire_paused(self) -> None:
        # Viewers held longer than this go and find a node that can serve them.
        for cam, since in list(self._suspended.items()):
            if time.monotonic() - since > self.outage_grace_s:
                self._suspended.pop(cam, None)
                self.counts["lost"] += 1
                if self.on_lost is not None:
                    self._spawn(self.on_lost(cam, f"Redis unreachable for over {self.outage_grace_s:g} s"))

    def _lose(self, camera_id: str, reason: str) -> None:
        self._owned.pop(camera_id, None)
        self.counts["lost"] += 1
        log.warning("camera %s: ownership lost (%s)", camera_id, reason)
        if self.on_lost is not None:
            self._spawn(self.on_lost(camera_id, reason))

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.renew_once()
            except Exception:  # the loop must keep running
                log.exception("cluster: lease renewal failed")
            await asyncio.sleep(max(0.05, self.renew_s - (time.monotonic() - started)))

    async def start(self) -> None:
        """Announce the node and start renewing."""
        await self.renew_once()
        self._task = asyncio.create_task(self._loop(), name="cluster-leases")

    async def stop(self) -> None:
        """Stop renewing, give every lease back, remove the heartbeat."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for cam in list(self._owned):
            self.released(cam)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._call(self.r.delete(self._node(self.node_id)))
            await self._call(self.r.srem(self._nodes, self.node_id))
