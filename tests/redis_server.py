"""A real redis-server on a free loopback port for tests (no persistence), stopped by PID."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures.camera_server import free_port
from tests.server_process import server_process


def redis_argv(port: int, tmp: Path) -> list[str]:
    """The command line of a redis-server on 127.0.0.1:``port`` without persistence, working in ``tmp``."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    return [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)]


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """Yields a ``redis://127.0.0.1:PORT/0`` URL."""
    port = free_port()
    with server_process(redis_argv(port, tmp), port, name="redis-server"):
        yield f"redis://127.0.0.1:{port}/0"
