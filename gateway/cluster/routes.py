"""``GET /api/cluster``: this node, the live nodes and who pulls which camera (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from acl.models import Role
from gateway.policy import require_roles

router = APIRouter(tags=["cluster"])


@router.get("/api/cluster", dependencies=[require_roles(Role.admin)])
async def cluster_status(
    request: Request, camera: Annotated[list[str] | None, Query(max_length=1000)] = None
) -> dict[str, Any]:
    """This node, the nodes with a current heartbeat, the cameras this node pulls, and the owner
    of each camera named by ``camera`` (repeatable)."""
    ld = request.app.state.ld
    node = ld.extras["cluster"]
    own = node.ownership
    state = getattr(ld.authorizer, "state", None)
    return {
        "node_id": node.node_id,
        "advertise_url": node.url,
        "redis_ok": own.redis_ok,
        "policy_revision": state.revision if state is not None else None,
        "nodes": await own.live_nodes(),
        "pulling": sorted(c for c in ld.hub.cameras() if own.owns(c)),
        "owners": await node.owners(list(camera or [])),
    }
