"""Property-based fuzzing of the whole HTTP API from its OpenAPI schema (schemathesis): no 5xx.

The gateway runs for real (uvicorn on a free loopback port in a thread with its own event loop,
a temporary data dir); every operation gets generated input, as an admin and without
credentials. The SSE stream is left out: it never ends, by design.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from acl.models import Role
from fixtures.camera_server import free_port
from gateway.settings import load_settings
from gateway.wiring import create_app

PASSWORD = "fuzz-password-123"
SECRET = "fuzz-cam-secret-77"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    app = create_app(load_settings(None, data_dir=Path(tmp_path_factory.mktemp("fuzz"))))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.05)

        async def seed() -> None:
            from acl.users import upsert_user

            async with app.state.ld.db.session() as s:
                await upsert_user(s, "fuzz-admin", PASSWORD, Role.admin)

        asyncio.run_coroutine_threadsafe(seed(), loop).result(10)
        base = f"http://127.0.0.1:{port}"
        tok = httpx.post(f"{base}/api/auth/token", data={"username": "fuzz-admin", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {tok['access_token']}"}
        cam = {"id": "cam-1", "name": "fuzz", "source_url": f"rtsp://u:{SECRET}@127.0.0.1:9/x"}
        assert httpx.post(f"{base}/api/cameras", json=cam, headers=headers).status_code == 201
        yield base, headers
    finally:
        server.should_exit = True
        thread.join(20)


def _openapi() -> dict[str, Any]:
    # The schema is the app's own; building the app runs nothing (no lifespan, no database).
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return create_app(load_settings(None, data_dir=Path(tmp))).openapi()


schema = schemathesis.openapi.from_dict(_openapi()).exclude(path="/api/events")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any, gateway: tuple[str, dict[str, str]]) -> None:
    base, headers = gateway
    for auth in (headers, {}):
        response = case.call(base_url=base, headers=auth, timeout=15)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
        )
        assert SECRET not in response.text
