"""``GET /api/cluster``: this node, the live nodes, who pulls which camera, and how far each
node's event consumer group is behind (admins)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from redis.exceptions import RedisError

from acl.models import Role
from gateway.container import services
from gateway.policy import require_roles

router = APIRouter(tags=["cluster"])
log = logging.getLogger(__name__)


@router.get("/api/cluster", dependencies=[require_roles(Role.admin)])
async def cluster_status(
    request: Request, camera: Annotated[list[str] | None, Query(max_length=1000)] = None
) -> dict[str, Any]:
    """This node, the nodes with a current heartbeat, the cameras this node pulls, the owner of
    each camera named by ``camera`` (repeatable), and per node its event consumer group:
    ``pending`` (read, not yet in its replay buffer) and ``lag`` (events it has not read yet;
    null while Redis cannot count them). ``event_groups`` is null when Redis does not answer."""
    ld = services(request)
    node = ld.cluster
    assert node is not None  # this router is mounted on cluster nodes only (gateway.wiring)
    own = node.ownership
    state = getattr(ld.authorizer, "state", None)
    groups = None
    if hasattr(ld.events, "groups"):
        try:
            groups = await ld.events.groups()
        except (RedisError, OSError) as e:
            log.debug("cluster: event groups unknown (%s)", type(e).__name__)
    return {
        "node_id": node.node_id,
        "advertise_url": node.url,
        "redis_ok": own.redis_ok,
        "policy_revision": state.revision if state is not None else None,
        "policy_loaded_at": node.policy_loaded_at,
        "nodes": await own.live_nodes(),
        "pulling": sorted(c for c in ld.hub.cameras() if own.owns(c)),
        "owners": await node.owners(list(camera or [])),
        "event_groups": groups,
    }
