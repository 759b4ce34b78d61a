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


def test_redact_masks_credentials_in_a_urls_path_or_query() -> None:
    assert redact("open rtsp://10.0.0.1/ch1?user=admin&password=s3cret&channel=1 failed") == (
        "open rtsp://10.0.0.1/ch1?user=***&password=***&channel=1 failed"
    )
    assert redact("'rtsp://h:554/user=admin_password=s3cret_channel=1_stream=0.sdp'") == (
        "'rtsp://h:554/user=***_password=***_channel=1_stream=0.sdp'"
    )
    assert redact('{"message": "rtsp://h/a;auth=YWRtaW4=", "user=alice": 1}') == (
        '{"message": "rtsp://h/a;auth=***", "user=alice": 1}'  # only inside URLs; JSON stays JSON
    )


def test_text_logs_keep_input_on_one_line() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "text", stream=buf)
    try:
        forged = "2026-01-01 00:00:00,000 INFO    gateway.auth [-] login ok user=admin"
        logging.getLogger("t").warning("login failed for %s", f"mallory\n{forged}\r\x1b[2J\u2028x")
        logging.getLogger("t").warning("camera %s\n", "a\tb")
    finally:
        configure_logging("INFO", "text")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("login failed for mallory\\n" + forged + "\\r\\x1b[2J\\u2028x")
    assert lines[1].endswith("camera a\\tb\\n")


def test_json_logs_keep_input_on_one_line() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "json", stream=buf)
    try:
        logging.getLogger("t").warning("name %s", "a\nb\u2028c\x85d")
    finally:
        configure_logging("INFO", "text")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["message"] == "name a\nb\u2028c\x85d"
