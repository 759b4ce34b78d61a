"""A TCP proxy in front of redis-server that a test can cut (a network partition for its clients)."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlparse

__all__ = ["RedisProxy"]


class RedisProxy:
    """Forwards 127.0.0.1:<port> to the Redis of ``target_url``.

    :meth:`cut` blackholes every connection (bytes are swallowed, nothing is answered, new
    connections are accepted and then ignored), as a partition would; :meth:`heal` resets the
    connections held during the cut and forwards again.
    """

    def __init__(self, target_url: str) -> None:
        u = urlparse(target_url)
        self.target = (u.hostname or "127.0.0.1", u.port or 6379)
        self.db = u.path or "/0"
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The Redis URL through the proxy."""
        return f"redis://127.0.0.1:{self.port}{self.db}"

    def __enter__(self) -> RedisProxy:
        t = threading.Thread(target=self._accept, daemon=True, name="redis-proxy")
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self._stop.set()
        self._srv.close()
        self._reset()

    def cut(self) -> None:
        """Partition: nothing gets through from now on."""
        self._cut.set()

    def heal(self) -> None:
        """End the partition: connections held through it are reset; new ones work."""
        self._reset()
        self._cut.clear()

    def _reset(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if self._cut.is_set():
                continue  # swallowed: the far side never hears of it
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()
