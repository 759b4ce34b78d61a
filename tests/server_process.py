"""A server a test starts itself: run it, wait until its loopback port accepts, stop it by its PID."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["server_process", "stop_process", "wait_for_port"]


def wait_for_port(proc: subprocess.Popen[bytes], port: int, name: str, timeout_s: float, poll_s: float) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; RuntimeError if ``proc`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(poll_s)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait_s: float = 5.0) -> None:
    """Send ``sig`` to the process (by its PID) and reap it; SIGKILL if it is still there after ``wait_s``."""
    proc.send_signal(sig)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def server_process(
    argv: Sequence[str],
    port: int,
    *,
    name: str,
    start_s: float = 10.0,
    poll_s: float = 0.05,
    stop_signal: int = signal.SIGTERM,
    stop_s: float = 5.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (output discarded) until the block ends; the block starts once ``port`` accepts."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(proc, port, name, start_s, poll_s)
        yield proc
    finally:
        stop_process(proc, stop_signal, stop_s)
