"""A small round-robin TCP load balancer on loopback, in front of several gateway nodes (as nginx or
HAProxy would be): each new client connection goes to the next backend that accepts it, a dead
backend is skipped, and when a backend's side closes the client's side is closed too.

For tests it can be pinned to one backend, and it records the head of each request it sees (a chunk
from the client that starts with a method) and the backend it went to.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

__all__ = ["Request", "TcpBalancer"]


_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


@dataclass
class Request:
    """One request seen on its way to a backend: the backend's port and the request head."""

    backend: int
    head: str

    @property
    def request_line(self) -> str:
        """``GET /path HTTP/1.1``."""
        return self.head.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        """A header of the request (case-insensitive), or None."""
        for line in self.head.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


class TcpBalancer:
    """Listens on 127.0.0.1:<port>, forwards to 127.0.0.1:<backend ports> round robin."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = list(backends)
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._next = 0
        self.pinned: int | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        """The balancer's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def pin(self, backend: int | None) -> None:
        """Send every new connection to this backend port (None: round robin again)."""
        self.pinned = backend

    def __enter__(self) -> TcpBalancer:
        threading.Thread(target=self._accept, daemon=True, name="tcp-balancer").start()
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self._stop.set()
        self._srv.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()

    def _connect(self) -> tuple[socket.socket, int] | None:
        order = [self.pinned] if self.pinned is not None else []
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        order += [self.backends[(start + i) % len(self.backends)] for i in range(len(self.backends))]
        for port in order:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=1), port
            except OSError:
                continue  # a dead node: the next one answers (proxy_next_upstream error)
        return None

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        got = self._connect()
        if got is None:
            client.close()
            return
        upstream, port = got
        upstream.settimeout(None)
        with self._lock:
            self._socks += [client, upstream]
        threading.Thread(target=self._pump, args=(client, upstream, port), daemon=True).start()
        self._pump(upstream, client, None)

    def _pump(self, src: socket.socket, dst: socket.socket, backend: int | None) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if backend is not None and data.startswith(_METHODS):
                with self._lock:
                    self.requests.append(Request(backend, data[:8192].decode("latin-1")))
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
