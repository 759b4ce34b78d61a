"""Send a camera request to the node that pulls the camera (HTTP 307, same method and body)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import HTTPException, Request, Response, status

from acl.identity import Subject
from gateway.container import services

__all__ = ["redirect_to_owner"]


def redirect_to_owner(request: Request, owner_url: str, camera_id: str, subject: Subject) -> Response:
    """A 307 to the same path and query on ``owner_url``, plus a stream token for the camera.

    Clients drop ``Authorization`` when a redirect leaves the origin, so the token (short-lived,
    one camera, dies with the login it came from) authenticates the repeated request; behind a
    load balancer with one route per node the redirect stays on the origin and cookies go along too.
    Any HTTP method keeps its body on a 307 (WHEP POST, HLS and snapshot GETs alike).
    """
    ld = services(request)
    node = ld.cluster
    if node is not None:
        node.metrics.redirected(getattr(request.scope.get("route"), "path", "other"))
    if subject.token_id is None:  # every credential derives from a login; nothing to hand on otherwise
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required")
    # The token carries the login's expiry, or the expiry of the stream token this request came
    # with: a chain of 307s never renews a token.
    token = ld.stream_tokens.issue(subject.user_id, camera_id, subject.token_id, subject.expires_at)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"] + [("token", token)]
    location = f"{owner_url}{request.url.path}?{urlencode(query)}"
    return Response(status_code=307, headers={"Location": location, "Cache-Control": "no-store"})
