"""Wire a gateway node into the cluster: leases for the hub, the control bus, the session
directory, and the hooks that tell other nodes about policy, inventory and login changes."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.cluster.bus import ControlBus
from gateway.cluster.metrics import ClusterCollector
from gateway.cluster.ownership import CameraOwnership
from gateway.cluster.sessions import SessionDirectory
from gateway.container import Liandong
from gateway.settings import Settings

__all__ = ["ClusterNode", "attach_cluster", "node_identity", "redis_client"]

log = logging.getLogger(__name__)


def node_identity(settings: Settings) -> tuple[str, str]:
    """(node id, advertise URL), with defaults from the host name and the listen address."""
    c = settings.cluster
    node_id = c.node_id or socket.gethostname()
    url = c.advertise_url or f"http://{settings.server.host}:{settings.server.port}"
    return node_id, url


def redis_client(url: str) -> Any:
    """An asyncio Redis client (one pool per node, shared by the cluster parts)."""
    import redis.asyncio

    return redis.asyncio.from_url(url, socket_connect_timeout=1.0, health_check_interval=5)


@dataclass
class ClusterNode:
    """This node's cluster parts (``ld.extras["cluster"]``)."""

    node_id: str
    url: str
    ownership: CameraOwnership
    bus: ControlBus
    sessions: SessionDirectory
    metrics: ClusterCollector

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


def attach_cluster(ld: Liandong, acl: Any) -> ClusterNode:
    """Make ``ld`` one node of the cluster named by ``ld.settings.cluster``."""
    s = ld.settings
    assert s.cluster.redis_url is not None
    node_id, url = node_identity(s)
    client = redis_client(s.cluster.redis_url)
    c = s.cluster
    ownership = CameraOwnership(
        client,
        node_id,
        url,
        lease_s=c.lease_s,
        renew_s=c.renew_s,
        timeout_s=c.redis_timeout_s,
        outage_grace_s=c.outage_grace_s,
    )
    bus = ControlBus(client, node_id)
    directory = SessionDirectory(client, ld.sessions, bus, ownership)
    node = ClusterNode(node_id, url, ownership, bus, directory, ClusterCollector(ownership, ld.metrics.registry))
    ld.extras["cluster"] = node
    from gateway.cluster.routes import router

    ld.extras.setdefault("routers", []).append(router)
    ld.hub.ownership = ownership

    async def lost(camera_id: str, reason: str) -> None:
        # Viewers reconnect (the console retries) and are redirected to the new owner.
        await ld.sessions.end_for_camera(camera_id, f"camera moved to another node: {reason}")
        await ld.hub.end_camera(camera_id, reason)

    ownership.on_lost = lost

    # Redis unreachable: pause the pull (this node can no longer prove it owns the camera) but keep
    # the viewers connected; when Redis confirms the lease again the pull resumes, and when another
    # node took the camera meanwhile (a partition, not an outage) the viewers are sent there.
    def suspend(camera_id: str, reason: str) -> None:
        ld.hub.suspend(camera_id, reason)

    async def resume(camera_id: str) -> None:
        try:
            if await ld.hub.resume(camera_id):
                return
        except Exception as e:  # e.g. the camera was deleted meanwhile
            log.warning("camera %s: could not resume (%s)", camera_id, type(e).__name__)
        ownership.released(camera_id)

    ownership.on_suspend = suspend
    ownership.on_resume = resume

    # Changes made here are stored first, then announced; other nodes reload from the database.
    async def policy_stored(what: str) -> None:
        await bus.publish("policy", what=what[:200])

    async def policy_elsewhere(msg: dict[str, Any]) -> None:
        await acl.reload(f"policy changed on node {msg.get('from')}")

    acl.on_stored.append(policy_stored)
    bus.handlers["policy"] = policy_elsewhere

    def relay(hooks: list[Callable[..., Awaitable[None]]], op: str, arg: str | None) -> None:
        async def announce(*args: Any) -> None:
            await bus.publish(op, **({arg: args[0]} if arg else {}))

        local = list(hooks)  # the hooks that act on this node (taken before ours is added)

        async def heard(msg: dict[str, Any]) -> None:
            for hook in local:
                await (hook(msg[arg]) if arg else hook())

        hooks.append(announce)
        bus.handlers[op] = heard

    # Added last in build_container, so every other hook is in the lists already.
    relay(ld.on_inventory_changed, "inventory", None)
    relay(ld.on_camera_removed, "camera_removed", "camera_id")
    relay(ld.on_token_revoked, "token_revoked", "token_id")

    async def resync() -> None:
        await acl.reload("resynchronised after Redis came back", inventory=True)
        await directory.republish()

    bus.on_reconnect.append(resync)

    async def follow_trucks() -> None:
        # Fixes are taken in by whichever node the GPS feed reaches; the location rule on every node
        # reads the watched trucks' newest fixes from the shared index once a second.
        while True:
            await asyncio.sleep(1.0)
            index = getattr(ld.positions, "index", None)
            if index is None or not hasattr(index, "latest_fixes"):
                return
            try:
                for vid, fix in (await index.latest_fixes(acl.foreign_trucks())).items():
                    acl.update_vehicle_position(vid, fix.lat, fix.lon, fix.t)
            except Exception as e:  # Redis away: keep what we know, try again
                log.debug("cluster: truck positions not read (%s)", type(e).__name__)

    async def start(_ld: Liandong) -> Callable[[], Awaitable[None]]:
        trucks = asyncio.create_task(follow_trucks(), name="cluster-trucks")
        await ownership.start()
        await bus.start()
        try:
            await directory.republish()
        except Exception as e:  # Redis away at start: the directory fills when it is back
            log.warning("cluster sessions: could not publish the directory (%s)", type(e).__name__)
        events = ld.events
        if hasattr(events, "start"):
            await events.start()
        log.info("cluster node %s up (advertised as %s)", node_id, url)

        async def stop() -> None:
            trucks.cancel()
            if hasattr(events, "stop"):
                await events.stop()
            await directory.stop()
            await bus.stop()
            await ownership.stop()
            await asyncio.wait_for(client.aclose(), 2)

        return stop

    # After the ACL (the policy must be loaded), before the media parts (they stop first, releasing leases).
    startups = ld.extras.setdefault("startups", [])
    startups.insert(1, start)
    return node
