"""A private network namespace for tests whose peers must not use loopback or leave the machine.

libnice (GStreamer's ICE) gathers no loopback candidates and probes UPnP by multicast. A test that
plays through it gets its own namespace: a thread that ``unshare(CLONE_NEWNET)``s itself (network
namespaces are per thread on Linux, so the rest of the test process keeps the machine's network),
brings ``lo`` up, makes a veth pair with addresses from the benchmarking range 198.18.0.0/15
(RFC 2544), and runs an asyncio loop. Coroutines given to :meth:`NetNamespace.run` run in that
loop; threads it starts and processes they spawn are in the namespace too. The namespace, its
links and sockets disappear when the thread and the processes it started are gone.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["GATEWAY_ADDRESS", "PLAYER_ADDRESS", "NetNamespace", "netns_unavailable"]

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
GATEWAY_ADDRESS = "198.18.0.1"
PLAYER_ADDRESS = "198.18.0.2"


def netns_unavailable() -> str | None:
    """Why no namespace can be made here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root to make a network namespace (unshare -n, a veth pair)"
    return None


class NetNamespace:
    """A thread with its own network namespace and event loop (a context manager)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="netns", daemon=True)

    def _main(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(_CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            for cmd in (
                "ip link set lo up",
                "ip link add v0 type veth peer name v1",
                f"ip addr add {GATEWAY_ADDRESS}/24 dev v0",
                f"ip addr add {PLAYER_ADDRESS}/24 dev v1",
                "ip link set v0 up",
                "ip link set v1 up",
            ):
                subprocess.run(cmd.split(), check=True, capture_output=True, timeout=10)
        except BaseException as e:  # reported by __enter__
            self._error = e
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def __enter__(self) -> NetNamespace:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"network namespace: {self._error}") from self._error
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the namespace's loop and wait for it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a blocking ``fn(*args)`` on a thread inside the namespace; returns its result."""
        return asyncio.run_coroutine_threadsafe(asyncio.to_thread(fn, *args), self.loop).result(60)
