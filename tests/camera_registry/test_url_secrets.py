"""Credentials in a camera URL's path or query: masked in the stored URL, kept apart, put back for FFmpeg."""

from __future__ import annotations

import pytest

from camera_registry.url_secrets import MASK, CameraSecrets, mask_in_url, merge_secrets
from camera_registry.urls import parse_source_url


@pytest.mark.parametrize(
    ("raw", "stored", "params"),
    [
        (
            "rtsp://10.0.0.5/ch1?user=admin&password=s3cret&channel=1",
            f"rtsp://10.0.0.5/ch1?user={MASK}&password={MASK}&channel=1",
            (("user", "admin"), ("password", "s3cret")),
        ),
        (
            "rtsp://10.0.0.5:554/cam/realmonitor?Username=admin&PWD=a%40b_c;subtype=1",
            f"rtsp://10.0.0.5:554/cam/realmonitor?Username={MASK}&PWD={MASK};subtype=1",
            (("username", "admin"), ("pwd", "a%40b_c")),
        ),
        (  # the Xiongmai path form: underscores separate, and may be in a value
            "rtsp://10.0.0.5:554/user=admin_password=ab_c_channel=1_stream=0.sdp?real_stream",
            f"rtsp://10.0.0.5:554/user={MASK}_password={MASK}_channel=1_stream=0.sdp?real_stream",
            (("user", "admin"), ("password", "ab_c")),
        ),
        (
            "rtsp://10.0.0.5/h264;auth=YWRtaW46eA==",
            f"rtsp://10.0.0.5/h264;auth={MASK}",
            (("auth", "YWRtaW46eA=="),),
        ),
        (  # empty values hold no secret; look-alike names are not credentials
            "rtsp://10.0.0.5/live?user=&password=&oauth=1&mode=user",
            "rtsp://10.0.0.5/live?user=&password=&oauth=1&mode=user",
            (),
        ),
    ],
)
def test_query_and_path_credentials_masked_and_restored(raw: str, stored: str, params: tuple[object, ...]) -> None:
    url, sec = merge_secrets(parse_source_url(raw).url, None, CameraSecrets(), keep_old=False)
    assert (url, sec.params) == (stored, params)
    assert sec.open_url(url) == raw
    assert CameraSecrets.loads(sec.dumps() if sec else None) == sec
    assert mask_in_url(raw) == stored


def test_mask_on_input_keeps_the_stored_value_only_for_the_same_origin() -> None:
    src = parse_source_url("rtsp://cam:pw@10.0.0.5/a?user=admin&password=s3cret")
    url, old = merge_secrets(src.url, src.credentials, CameraSecrets(), keep_old=False)
    assert old.userinfo == "cam:pw"
    # The URL as an admin sees it, edited elsewhere: the masks take the stored values.
    url2, kept = merge_secrets(url.replace("/a?", "/b?"), None, old, keep_old=True)
    assert kept == old and kept.open_url(url2) == "rtsp://cam:pw@10.0.0.5/b?user=admin&password=s3cret"
    # A new value replaces the stored one; a mask with nothing stored becomes empty.
    url3, changed = merge_secrets(f"rtsp://10.0.0.5/a?user={MASK}&password=n3w", None, old, keep_old=True)
    assert changed.params == (("user", "admin"), ("password", "n3w")) and url3 == url
    url4, dropped = merge_secrets(url, None, old, keep_old=False)
    assert url4 == "rtsp://10.0.0.5/a?user=&password=" and not dropped


def test_userinfo_only_entries_keep_their_old_form() -> None:
    # Entries written before URL parameters were kept are plain "user:password".
    assert CameraSecrets.loads("admin:pw") == CameraSecrets("admin:pw")
    assert CameraSecrets("admin:pw").dumps() == "admin:pw"
    assert CameraSecrets("admin:{x").open_url("rtsp://h/p") == "rtsp://admin:%7Bx@h/p"
