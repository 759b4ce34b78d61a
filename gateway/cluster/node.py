"""One gateway node of a cluster: its leases, control bus and session directory, what it tells the
other nodes (policy, inventory and login changes, vehicle fixes) and what it does when they tell it.

Everything reaches a :class:`ClusterNode` through its constructor; the composition root
(``gateway/wiring.py``) adds the node's announcing hooks to the hook lists of the other parts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.cluster.bus import ControlBus, redis_client
from gateway.cluster.cors import PeerOrigins
from gateway.cluster.metrics import ClusterCollector
from gateway.cluster.ownership import CameraOwnership
from gateway.cluster.sessions import SessionDirectory
from gateway.sessions import SessionRegistry
from gateway.settings import Settings

__all__ = ["ClusterNode", "FixOutbox", "cluster_ownership", "node_identity", "redis_client"]

log = logging.getLogger(__name__)

Hook = Callable[..., Awaitable[None]]
FixTuple = tuple[str, float, float, float]  # vehicle id, lat, lon, epoch seconds


def node_identity(settings: Settings) -> tuple[str, str]:
    """(node id, advertise URL), with defaults from the host name and the listen address."""
    c = settings.cluster
    node_id = c.node_id or socket.gethostname()
    scheme = "https" if settings.server.tls else "http"
    url = c.advertise_url or f"{scheme}://{settings.server.host}:{settings.server.port}"
    return node_id, url


def cluster_ownership(
    settings: Settings,
    client: Any,
    *,
    on_lost: Callable[[str, str], Awaitable[None]],
    on_suspend: Callable[[str, str], None],
    on_resume: Callable[[str], Awaitable[bool]],
) -> CameraOwnership:
    """This node's camera leases (the stream hub's :class:`~streams.ports.Ownership` in a cluster),
    with what a lost, paused or confirmed-again lease does to the node's media."""
    c = settings.cluster
    node_id, url = node_identity(settings)
    return CameraOwnership(
        client,
        node_id,
        url,
        lease_s=c.lease_s,
        renew_s=c.renew_s,
        timeout_s=c.redis_timeout_s,
        outage_grace_s=c.outage_grace_s,
        placement=c.placement,
        placement_slack=c.placement_slack,
        on_lost=on_lost,
        on_suspend=on_suspend,
        on_resume=on_resume,
    )


class FixOutbox:
    """Vehicle fixes taken in on this node, waiting to be sent to the others (bounded: a node cut off
    from Redis keeps the newest 50,000 at most, the rest is in the shared index anyway)."""

    limit = 50_000

    def __init__(self) -> None:
        self._fixes: list[list[Any]] = []

    def taken(self, vehicle_id: str, lat: float, lon: float, t: float) -> None:
        """A :class:`~camera_registry.positions.PositionService` ``on_taken`` listener."""
        if len(self._fixes) < self.limit:
            self._fixes.append([vehicle_id, lat, lon, t])

    def drain(self) -> list[list[Any]]:
        """The fixes waiting, oldest first; the outbox is empty afterwards."""
        out, self._fixes = self._fixes, []
        return out


def parse_fixes(items: Any, limit: int = FixOutbox.limit) -> list[FixTuple]:
    """Fixes from another node's message; malformed items are skipped."""
    out: list[FixTuple] = []
    if not isinstance(items, list):
        return out
    for item in items[:limit]:
        try:
            out.append((str(item[0]), float(item[1]), float(item[2]), float(item[3])))
        except (TypeError, ValueError, IndexError, KeyError):
            continue
    return out


class ClusterNode:
    """This node's cluster parts (``Liandong.cluster``).

    ``reload_policy(reason, inventory)`` reloads the viewing policy from the database (another node
    stored a change); ``fixes_heard`` takes the fixes other nodes took in; ``watched_trucks`` and
    ``truck_position`` keep the location rule in step with the trucks' newest fixes in the shared
    ``latest_fixes`` index; ``events`` is started and stopped with the node.
    """

    def __init__(
        self,
        settings: Settings,
        client: Any,
        ownership: CameraOwnership,
        sessions: SessionRegistry,
        registry: CollectorRegistry,
        *,
        reload_policy: Callable[[str, bool], Awaitable[int]],
        fixes_heard: Callable[[list[FixTuple]], object],
        outbox: FixOutbox,
        latest_fixes: Callable[[Iterable[str]], Awaitable[dict[str, Any]]],
        watched_trucks: Callable[[], Iterable[str]],
        truck_position: Callable[[str, float, float, float], None],
    ) -> None:
        self.node_id, self.url = node_identity(settings)
        self.client = client
        self.ownership = ownership
        self.bus = ControlBus(client, self.node_id)
        self.sessions = SessionDirectory(client, sessions, self.bus, ownership)
        self.metrics = ClusterCollector(ownership, registry)
        # The nodes' browser origins (CORS between nodes, the console's CSP).
        self.origins = PeerOrigins(self.url, ownership.live_nodes, consoles=settings.cluster.console_origins)
        self.policy_loaded_at = 0.0  # wall clock of the last policy change applied here (stored or reloaded)
        self._reload_policy = reload_policy
        self._fixes_heard = fixes_heard
        self._outbox = outbox
        self._latest_fixes = latest_fixes
        self._watched_trucks = watched_trucks
        self._truck_position = truck_position
        self.bus.handlers["policy"] = self._policy_elsewhere
        self.bus.handlers["fixes"] = self._fixes_elsewhere
        self.bus.on_reconnect.append(self._resync)

    # -- what other nodes ask of this one --------------------------------------------------
    async def served_elsewhere(self, camera_id: str) -> str | None:
        """The base URL of another live node pulling the camera, or None (free, ours, or Redis away)."""
        if self.ownership.owns(camera_id):
            return None
        try:
            owner = await self.ownership.owner_of(camera_id)
            if owner is None or owner == self.node_id:
                return None
            return (await self.ownership.live_nodes()).get(owner)
        except Exception as e:  # no coordination: serve it here as a single node would
            log.debug("cluster: owner of %s unknown (%s)", camera_id, type(e).__name__)
            return None

    async def owners(self, camera_ids: list[str]) -> dict[str, str | None]:
        """Camera id -> owning node id (None when no node pulls it)."""
        out: dict[str, str | None] = {}
        for c in camera_ids:
            out[c] = await self.ownership.owner_of(c)
        return out

    # -- hooks the composition root adds to the other parts' lists -------------------------
    async def policy_stored(self, what: str) -> None:
        """A policy change was stored here: the other nodes reload it from the database."""
        self.policy_loaded_at = time.time()
        await self.bus.publish("policy", what=what[:200])

    def relay(self, op: str, local: list[Hook], arg: str | None = None) -> Hook:
        """The hook that announces ``op`` to the other nodes; when they announce it, ``local`` (the
        hooks that act on a node, taken before the announcing one is added) run here."""

        async def announce(*args: Any) -> None:
            await self.bus.publish(op, **({arg: args[0]} if arg else {}))

        hooks = list(local)

        async def heard(msg: dict[str, Any]) -> None:
            for hook in hooks:
                await (hook(msg[arg]) if arg else hook())

        self.bus.handlers[op] = heard
        return announce

    # -- what this node does when the others speak -----------------------------------------
    async def _policy_elsewhere(self, msg: dict[str, Any]) -> None:
        started = time.perf_counter()
        ended = await self._reload_policy(f"policy changed on node {msg.get('from')}", False)
        self.policy_loaded_at = time.time()
        log.info(
            "policy reloaded in %.0f ms after a change on node %s (%d stream(s) ended)",
            (time.perf_counter() - started) * 1000,
            msg.get("from"),
            ended,
        )

    async def _resync(self) -> None:
        await self._reload_policy("resynchronised after Redis came back", True)
        await self.sessions.republish()

    async def _fixes_elsewhere(self, msg: dict[str, Any]) -> None:
        self._fixes_heard(parse_fixes(msg.get("fixes")))

    async def _relay_fixes(self) -> None:
        # Each node keeps tracks in memory from the fixes it takes in; the others hear them in
        # batches (ids and coordinates only) so a track asked of any node is whole.
        while True:
            await asyncio.sleep(0.5)
            batch = self._outbox.drain()
            if batch:
                await self.bus.publish("fixes", fixes=batch)

    async def _follow_trucks(self) -> None:
        # Fixes are taken in by whichever node the GPS feed reaches; the location rule on every node
        # reads the watched trucks' newest fixes from the shared index once a second.
        while True:
            await asyncio.sleep(1.0)
            try:
                for vid, fix in (await self._latest_fixes(self._watched_trucks())).items():
                    self._truck_position(vid, fix.lat, fix.lon, fix.t)
            except Exception as e:  # Redis away: keep what we know, try again
                log.debug("cluster: truck positions not read (%s)", type(e).__name__)

    # -- start and stop ----------------------------------------------------------------------
    async def start(self) -> Callable[[], Awaitable[None]]:
        """Take part in the cluster (leases, bus, directory); returns the stop."""
        tasks = [
            asyncio.create_task(self._follow_trucks(), name="cluster-trucks"),
            asyncio.create_task(self._relay_fixes(), name="cluster-fixes"),
        ]
        await self.ownership.start()
        await self.bus.start()
        try:
            await self.sessions.republish()
        except Exception as e:  # Redis away at start: the directory fills when it is back
            log.warning("cluster sessions: could not publish the directory (%s)", type(e).__name__)
        log.info("cluster node %s up (advertised as %s)", self.node_id, self.url)

        async def stop() -> None:
            for t in tasks:
                t.cancel()
            await self.sessions.stop()
            await self.bus.stop()
            await self.ownership.stop()
            await asyncio.wait_for(self.client.aclose(), 2)

        return stop
