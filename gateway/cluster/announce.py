"""Tell the running nodes about a policy change made outside them (the ``liandong`` CLI).

The API's node announces its own changes (``policy`` on the control channel, then a
``policy.changed`` console event). A CLI command is no node, so after its change is committed it
sends the same two things itself, in one ``MULTI``: the ``policy`` control message (every node
reloads the policy at once instead of at its next once-a-second revision check) and, for a stored
policy revision, the ``policy.changed`` event on the console stream (before, each node announced
it when its revision check found the change; the message makes that check find nothing new).
Both or neither: when Redis cannot be reached, the nodes still find the change by their revision
check, and announce it to the consoles themselves as before.
"""

from __future__ import annotations

import asyncio
import getpass
import socket

from gateway.cluster.bus import CHANNEL, control_message, redis_client
from gateway.cluster.events import STREAM_KEY, entry_fields
from gateway.events import Audience
from gateway.settings import Settings

__all__ = ["cli_sender", "tell_cluster", "tell_nodes"]


def cli_sender() -> str:
    """The ``from`` of a CLI's messages: never a node id (node ids cannot contain ``:``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"cli:{user}@{socket.gethostname()}"[:100]


async def tell_nodes(settings: Settings, what: str, revision: int | None, timeout_s: float = 3.0) -> bool:
    """Announce a committed change to the cluster; False when not in a cluster (nothing to do).

    ``revision``: the stored policy revision (None for a change that has none, e.g. a user's role);
    with it the consoles also get ``policy.changed``. Raises ``redis.exceptions.RedisError``,
    ``OSError`` or ``TimeoutError`` when Redis could not be told (the caller warns; the change stands).
    """
    url = settings.cluster.redis_url
    if url is None:
        return False
    client = redis_client(url)
    try:
        async with client.pipeline(transaction=True) as p:
            if revision:
                # As the API node does for a change whose reach it cannot tell: every console.
                everyone = Audience(everyone=True)
                event = entry_fields("policy.changed", {"revision": revision}, everyone, revision=revision)
                p.xadd(STREAM_KEY, event, maxlen=settings.cluster.events_kept, approximate=True)
            p.publish(CHANNEL, control_message(cli_sender(), "policy", what=what[:200]))
            await asyncio.wait_for(p.execute(), timeout_s)
    finally:
        await client.aclose()
    return True


async def tell_cluster(settings: Settings, what: str, revision: int | None) -> str | None:
    """Announce a committed change to the cluster's nodes (no-op without ``[cluster] redis_url``);
    returns why that failed, or None. Never raises: the change is committed either way."""
    try:
        await tell_nodes(settings, what, revision)
    except Exception as e:  # Redis away, refused, slow: the nodes find the change by their revision check
        return f"{type(e).__name__}: {e}"[:300]
    return None
