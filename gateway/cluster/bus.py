"""Control messages between nodes over Redis pub/sub: "the policy changed", "end session X", ...

Messages carry ids only (camera ids, session ids, revisions), never URLs or credentials. Pub/sub
is at-most-once: a node that misses a message (Redis restarted, it was partitioned) resynchronises
when it reconnects (``on_reconnect``), and the ACL's revision poll catches any policy change
within a second regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

__all__ = ["CHANNEL", "ControlBus", "control_message", "redis_client"]

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], Awaitable[None]]
CHANNEL = "liandong:control"


def redis_client(url: str) -> Any:
    """An asyncio Redis client (one pool per node, shared by the cluster parts)."""
    import redis.asyncio

    return redis.asyncio.from_url(url, socket_connect_timeout=1.0, health_check_interval=5)


def control_message(sender: str, op: str, **fields: Any) -> str:
    """One control message as sent on the channel (``sender``: a node id, or ``cli:...``)."""
    return json.dumps({"op": op, "from": sender, **fields})


class ControlBus:
    """Publish control messages to every node; dispatch received ones by ``op`` to handlers."""

    def __init__(self, client: Any, node_id: str, channel: str = CHANNEL) -> None:
        self.r = client
        self.node_id = node_id
        self.channel = channel
        self.handlers: dict[str, Handler] = {}
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def publish(self, op: str, **fields: Any) -> bool:
        """Send a message to every other node; False when Redis is unreachable (logged)."""
        msg = control_message(self.node_id, op, **fields)
        try:
            await asyncio.wait_for(self.r.publish(self.channel, msg), 2.0)
            return True
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("cluster: could not publish %s (%s)", op, type(e).__name__)
            return False

    async def _dispatch(self, raw: bytes | str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if not isinstance(msg, dict) or msg.get("from") == self.node_id:
            return  # our own message: already applied here
        handler = self.handlers.get(str(msg.get("op")))
        if handler is None:
            return
        try:
            await handler(msg)
        except Exception:  # one bad message must not stop the listener
            log.exception("cluster: handling %s failed", msg.get("op"))

    async def _listen(self) -> None:
        delay = 0.2
        first = True
        while True:
            pubsub = self.r.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                if not first:
                    log.info("cluster: control channel reconnected; resynchronising")
                    for cb in self.on_reconnect:
                        try:
                            await cb()
                        except Exception:
                            log.exception("cluster: resynchronising failed")
                first = False
                delay = 0.2
                while True:
                    m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if m is not None and m.get("type") == "message":
                        await self._dispatch(m["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                self.connected.clear()
                log.warning("cluster: control channel lost (%s); retrying in %.1f s", type(e).__name__, delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def start(self) -> None:
        """Subscribe (returns once subscribed, or after 2 s if Redis is away)."""
        self._task = asyncio.create_task(self._listen(), name="cluster-control")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 2.0)

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
