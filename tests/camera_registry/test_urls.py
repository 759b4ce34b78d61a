"""Source URL validation: only rtsp(s), credentials split out and put back intact, origins compared."""

from __future__ import annotations

import re

import pytest

from camera_registry.urls import SourceUrlError, parse_source_url, same_origin, with_credentials

SECRET = "p@ss:w/rd%41 中"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file' not allowed"),
        ("concat:rtsp://a/b|file:///etc/passwd", "scheme 'concat' not allowed"),
        ("http://169.254.169.254/", "scheme 'http' not allowed"),
        ("pipe:0", "scheme 'pipe' not allowed"),
        ("subfile,,start,0,end,0,,:rtsp://h/p", "scheme '?' not allowed"),
        ("/etc/passwd", "scheme '?' not allowed"),
        ("rtsp:/h/p", "must be of the form"),
        ("rtsp://", "host missing"),
        ("rtsp://h:99999/p", "malformed URL"),
        ("rtsp://h_x!/p", "invalid host"),
        ("rtsp://h/p|file:/etc/passwd", "not allowed"),
        ("rtsp://h/p q", "not allowed"),
        ("rtsp://h/p#frag", "not allowed"),
        ("rtsp://h/" + "a" * 3000, "longer than 2048"),
        ("", "required"),
    ],
)
def test_rejected_urls(raw: str, reason: str) -> None:
    with pytest.raises(SourceUrlError, match=re.escape(reason)):
        parse_source_url(raw)


def test_rejection_never_echoes_credentials() -> None:
    for raw in (f"http://u:{SECRET}@h/p", f"rtsp://u:{SECRET}@h:99999/p", f"rtsp://u:{SECRET}@h/p q"):
        with pytest.raises(SourceUrlError) as e:
            parse_source_url(raw.replace(SECRET, "hunter2"))
        assert "hunter2" not in str(e.value)


def test_credentials_split_and_restored() -> None:
    from urllib.parse import quote

    raw = f"rtsp://{quote('admin', safe='')}:{quote(SECRET, safe='')}@Cam-1.example.net:8554/Streaming/Channels/101?a=1"
    src = parse_source_url(raw)
    assert src.url == "rtsp://cam-1.example.net:8554/Streaming/Channels/101?a=1"
    assert (src.username, src.password, src.credentials) == ("admin", SECRET, f"admin:{SECRET}")
    back = with_credentials(src.url, src.credentials)
    assert parse_source_url(back) == src
    v6 = parse_source_url("rtsps://u:p@[::1]:322/live")
    assert (v6.url, v6.credentials) == ("rtsps://[::1]:322/live", "u:p")
    assert parse_source_url("rtsp://10.0.0.1").url == "rtsp://10.0.0.1/"
    assert parse_source_url("rtsp://10.0.0.1/x").credentials is None


def test_same_origin() -> None:
    assert same_origin("rtsp://h/a", "rtsp://H:554/b")
    assert same_origin("rtsps://h:322/a", "rtsps://h/b")
    assert not same_origin("rtsp://h/a", "rtsp://h:8554/a")
    assert not same_origin("rtsp://h/a", "rtsps://h/a")
    assert not same_origin("rtsp://h/a", "rtsp://other/a")
