"""Guards between the network and the app: request size and slow clients.

- :class:`BodyLimit` (ASGI middleware): bodies larger than ``server.max_body_bytes`` get 413,
  whether announced by ``Content-Length`` or streamed chunked; a body that stops arriving for
  ``server.body_timeout_s`` gets 408. Either way the handler stops waiting.
- :func:`guarded_h11`: uvicorn's h11 protocol with a deadline for the request head. uvicorn has
  none: a client that connects and sends half a request line would hold a socket forever
  (slowloris); with this the connection is closed after ``server.head_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from gateway.settings import ServerSettings

__all__ = ["BodyLimit", "guarded_h11", "uvicorn_options"]

log = logging.getLogger(__name__)


class BodyLimit:
    """413 for bodies over ``max_bytes``, 408 when the body stalls for ``idle_timeout_s``."""

    def __init__(self, app: ASGIApp, max_bytes: int, idle_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body larger than {self.max_bytes} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await JSONResponse({"detail": too_large}, status_code=413)(scope, receive, send)
                return
        seen = 0
        body_done = False

        async def limited() -> Message:
            nonlocal seen, body_done
            if body_done:  # after the body only a disconnect can come: a stream may wait for it for hours
                return await receive()
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"request body stalled for {self.idle_timeout_s:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, too_large)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        await self.app(scope, limited, send)


class _GuardedH11Protocol(H11Protocol):
    """h11 with a deadline from a request's first byte (or the connection) to its complete head."""

    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._armed_for: Any = None
        self._arm()  # from the connection: a client that never sends a whole head is cut off too

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        # A complete head starts a new cycle; the same cycle at the deadline means the head stalled.
        self._armed_for = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_deadline, self.cycle)

    def _head_deadline(self, waiting_for: Any) -> None:
        self._head_timer = None
        if self.cycle is waiting_for and not self.transport.is_closing():
            log.info("closing a connection from %s: no complete request head in %g s", self.client, self.head_timeout_s)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and (self._head_timer is None or self._armed_for is not self.cycle):
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def guarded_h11(head_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with a request-head deadline (pass as ``uvicorn.run(http=...)``)."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"head_timeout_s": head_timeout_s})


def uvicorn_options(srv: ServerSettings) -> dict[str, Any]:
    """The uvicorn options `liandong serve` runs with (also used by the tests' live gateway, so they
    meet the same keep-alive, head deadline and proxy-header handling): host, port, TLS and app are
    the caller's. ``proxy_headers`` is off: X-Forwarded-For is the app's business (gateway/proxy.py)."""
    return {
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "timeout_keep_alive": srv.keep_alive_s,
        "http": guarded_h11(srv.head_timeout_s),
    }
