"""A throwaway PostgreSQL (Debian's ``postgresql`` package) on a free loopback port for tests.

``initdb`` into the test's temporary directory and ``postgres`` run as the ``postgres`` system
user when the tests run as root (PostgreSQL refuses root); fsync is off (the data is thrown
away). The server is stopped by its PID.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures.camera_server import free_port
from tests.server_process import server_process

__all__ = ["postgres_bin", "postgres_server"]


def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries, if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a ``postgresql://liandong@127.0.0.1:PORT/liandong`` URL (trust authentication, loopback)."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    as_user: list[str] = []
    # Not under ``tmp``: pytest's base directory is private to root, and postgres runs as its own user.
    top = Path(tempfile.mkdtemp(prefix="liandong-pg-"))
    os.chmod(top, 0o755)
    data = top / "data"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        assert runuser is not None
        as_user = [runuser, "-u", "postgres", "--"]
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "liandong", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    argv = [
        *as_user,
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={data}",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    try:
        # SIGINT: a fast shutdown.
        with server_process(argv, port, name="postgres", start_s=20, poll_s=0.1, stop_signal=signal.SIGINT, stop_s=15):
            for _ in range(50):  # the port opens slightly before connections are accepted
                r = subprocess.run(
                    [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "liandong", "liandong"],
                    capture_output=True,
                )
                if r.returncode == 0:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"createdb failed: {r.stderr.decode(errors='replace')[:200]}")
            yield f"postgresql://liandong@127.0.0.1:{port}/liandong"
    finally:
        shutil.rmtree(top, ignore_errors=True)
