"""Wire a gateway node into the cluster: leases for the hub, the control bus, the session
directory, and the hooks that tell other nodes about policy, inventory and login changes."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from acl.service import AclService
from gateway.cluster.bus import ControlBus, redis_client
from gateway.cluster.cors import PeerOrigins
from gateway.cluster.metrics import ClusterCollector
from gateway.cluster.ownership import CameraOwnership
from gateway.cluster.sessions import SessionDirectory
from gateway.container import Liandong, Startup
from gateway.settings import Settings

__all__ = ["ClusterNode", "attach_cluster", "cluster_ownership", "node_identity", "redis_client"]

log = logging.getLogger(__name__)


def node_identity(settings: Settings) -> tuple[str, str]:
    """(node id, advertise URL), with defaults from the host name and the listen address."""
    c = settings.cluster
    node_id = c.node_id or socket.gethostname()
    scheme = "https" if settings.server.tls else "http"
    url = c.advertise_url or f"{scheme}://{settings.server.host}:{settings.server.port}"
    return node_id, url


@dataclass
class ClusterNode:
    """This node's cluster parts (``Liandong.cluster``)."""

    node_id: str
    url: str
    ownership: CameraOwnership
    bus: ControlBus
    sessions: SessionDirectory
    metrics: ClusterCollector
    policy_loaded_at: float = 0.0  # wall clock of the last policy change applied here (stored or reloaded)
    origins: PeerOrigins | None = None  # the nodes' browser origins (CORS between nodes, the console's CSP)

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


def cluster_ownership(settings: Settings, client: Any) -> CameraOwnership:
    """This node's camera leases (the stream hub's :class:`~streams.ports.Ownership` in a cluster)."""
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
    )


def attach_cluster(
    ld: Liandong, acl: AclService, client: Any, ownership: CameraOwnership
) -> tuple[ClusterNode, Startup]:
    """Make ``ld`` one node of the cluster named by ``ld.settings.cluster``: ``client`` is the node's
    Redis client and ``ownership`` the leases its stream hub was built with. Returns the node and its
    start-up (the composition root puts it after the policy's and before the media's)."""
    s = ld.settings
    node_id, url = node_identity(s)
    c = s.cluster
    bus = ControlBus(client, node_id)
    directory = SessionDirectory(client, ld.sessions, bus, ownership)
    node = ClusterNode(node_id, url, ownership, bus, directory, ClusterCollector(ownership, ld.metrics.registry))
    node.origins = PeerOrigins(url, ownership.live_nodes, consoles=c.console_origins)

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
        node.policy_loaded_at = time.time()
        await bus.publish("policy", what=what[:200])

    async def policy_elsewhere(msg: dict[str, Any]) -> None:
        started = time.perf_counter()
        ended = await acl.reload(f"policy changed on node {msg.get('from')}")
        node.policy_loaded_at = time.time()
        log.info(
            "policy reloaded in %.0f ms after a change on node %s (%d stream(s) ended)",
            (time.perf_counter() - started) * 1000,
            msg.get("from"),
            ended,
        )

    acl.notices.on_stored.append(policy_stored)
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

    # Added last by the composition root, so every other hook is in the lists already.
    relay(ld.on_inventory_changed, "inventory", None)
    relay(ld.on_camera_removed, "camera_removed", "camera_id")
    relay(ld.on_token_revoked, "token_revoked", "token_id")

    async def resync() -> None:
        await acl.reload("resynchronised after Redis came back", inventory=True)
        await directory.republish()

    bus.on_reconnect.append(resync)

    # Track history: each node keeps tracks in memory from the fixes it takes in; the others hear
    # them in batches (ids and coordinates only) so a track asked of any node is whole.
    outgoing: list[list[Any]] = []
    positions = ld.positions
    heard_fix = positions.on_fix

    def fix_taken(vehicle_id: str, lat: float, lon: float, t: float) -> None:
        if heard_fix is not None:
            heard_fix(vehicle_id, lat, lon, t)
        if len(outgoing) < 50_000:
            outgoing.append([vehicle_id, lat, lon, t])

    positions.on_fix = fix_taken

    async def relay_fixes() -> None:
        while True:
            await asyncio.sleep(0.5)
            if outgoing:
                batch = outgoing[:]
                outgoing.clear()
                await bus.publish("fixes", fixes=batch)

    async def fixes_elsewhere(msg: dict[str, Any]) -> None:
        from camera_registry.positions import Track
        from camera_registry.vehicle_index import Fix

        cutoff = time.time() - positions.settings.track_retention_s
        for item in msg.get("fixes", [])[:50_000]:
            try:
                vid, lat, lon, t = str(item[0]), float(item[1]), float(item[2]), float(item[3])
            except (TypeError, ValueError, IndexError):
                continue
            if vid not in positions.vehicles or t < cutoff:
                continue
            if heard_fix is not None:
                heard_fix(vid, lat, lon, t)  # the location rule sees it at once, not at the next poll
            if positions._foreign_truck(vid) and not positions.inside_district(lat, lon):
                continue  # not tracked outside the district, as on the node that took it in
            track = positions.tracks.get(vid)
            if track is None:
                track = positions.tracks[vid] = Track(positions.settings.track_max_points)
            track.add(Fix(vid, lat, lon, t))

    bus.handlers["fixes"] = fixes_elsewhere

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

    async def start() -> Callable[[], Awaitable[None]]:
        trucks = asyncio.create_task(follow_trucks(), name="cluster-trucks")
        relay = asyncio.create_task(relay_fixes(), name="cluster-fixes")
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
            relay.cancel()
            if hasattr(events, "stop"):
                await events.stop()
            await directory.stop()
            await bus.stop()
            await ownership.stop()
            await asyncio.wait_for(client.aclose(), 2)

        return stop

    return node, start
