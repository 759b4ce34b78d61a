"""Logs carry the request id, come as JSON when configured, and never show URL credentials."""

from __future__ import annotations

import io
import json
import logging

import httpx

from gateway.logs import configure_logging, redact


def test_redact_removes_credentials() -> None:
    assert redact("open rtsp://admin:s3cr3t@10.0.0.1:554/x failed") == "open rtsp://***@10.0.0.1:554/x failed"
    assert redact("rtsps://user@h/p") == "rtsps://***@h/p"
    assert redact("no url here") == "no url here"


def test_json_format_has_request_id() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "json", stream=buf)
    try:
        logging.getLogger("t").info("hello %s", "rtsp://a:b@h/p", extra={"camera": "c1"})
    finally:
        configure_logging("INFO", "text")
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert line["message"] == "hello rtsp://***@h/p"
    assert line["camera"] == "c1"
    assert line["request_id"] == "-"


async def test_request_id_header(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await app_client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
    assert r.headers["x-request-id"] != "bad id\n"
    assert len(r.headers["x-request-id"]) == 16
