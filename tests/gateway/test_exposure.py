"""Demo and defaults (issue 15, finding 7): the demo's own data dir, no plain HTTP beyond loopback,
``serve`` over TLS with secure cookies."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acl.models import Role
from fixtures.camera_server import free_port
from fixtures.demo import DEMO_DATA_DIR, check_demo_start
from fixtures.gateway_process import add_user
from gateway.datadir import MARKER, DataDirInUse, check_demo_may_seed, used_by
from gateway.listen import ListenRefused, check_listen, is_loopback
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANDONG_")}
    return {**env, "LIANDONG_DATA_DIR": str(data_dir), "LIANDONG_LOG__LEVEL": "WARNING"}


# -- where the gateway may listen ------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_tls(host: str) -> None:
    assert is_loopback(host)
    assert check_listen(host, tls=False, insecure=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "2001:db8::1", "no-such-host.invalid"])
def test_plain_http_beyond_loopback_is_refused_unless_insecure(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ListenRefused, match="--ssl-certfile") as e:
        check_listen(host, tls=False, insecure=False)
    assert "--insecure" in str(e.value) and "without TLS" in str(e.value)
    assert check_listen(host, tls=True, insecure=False) is None
    warning = check_listen(host, tls=False, insecure=True)
    assert warning is not None and warning.startswith("WARNING") and "in clear" in warning


def test_serve_refuses_plain_http_beyond_loopback_before_binding(tmp_path: Path) -> None:
    """A real ``liandong serve --host 0.0.0.0``: exits 2 with the reason, nothing listens on the port."""
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=ROOT,
        env=_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "refusing" in proc.stderr and "without TLS" in proc.stderr and "--insecure" in proc.stderr
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


# -- TLS settings ------------------------------------------------------------------------------------
def _self_signed(dir_: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = dir_ / "cert.pem", dir_ / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


def test_tls_settings_both_or_neither_and_readable(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with pytest.raises(ValueError, match="give both or neither"):
        load_settings(None, server={"ssl_certfile": cert})
    with pytest.raises(ValueError, match=r"ssl_keyfile: .* cannot be read"):
        load_settings(None, server={"ssl_certfile": cert, "ssl_keyfile": tmp_path / "absent.pem"})
    s = load_settings(None, server={"ssl_certfile": cert, "ssl_keyfile": key})
    assert s.server.tls and s.auth.cookie_secure  # secure cookies follow TLS
    assert not load_settings(None).auth.cookie_secure  # plain HTTP on loopback (the default)
    explicit = load_settings(None, server={"ssl_certfile": cert, "ssl_keyfile": key}, auth={"cookie_secure": False})
    assert not explicit.auth.cookie_secure  # an explicit setting wins
    assert load_settings(None, auth={"cookie_secure": True}).auth.cookie_secure  # behind a TLS proxy


def test_serve_over_tls_answers_https_and_sets_secure_cookies(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    data = tmp_path / "data"
    add_user(data, "alice", "correct horse battery", Role.operator)
    port = free_port()
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    argv += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=_env(data), stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(base + "/healthz", verify=trust, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the same port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).raise_for_status()
        r = httpx.post(
            base + "/api/auth/login",
            json={"username": "alice", "password": "correct horse battery"},
            verify=trust,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all("; secure" in c.lower() for c in cookies), cookies
        assert used_by(data) == "serve"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the demo's data dir -------------------------------------------------------------------------------
def test_demo_data_dir_is_not_serves() -> None:
    assert DEMO_DATA_DIR != load_settings(None).data_dir  # `var`: what `liandong serve` uses by default
    assert DEMO_DATA_DIR.parts[-1] == "demo"


def test_demo_refuses_a_data_dir_serve_has_used(tmp_path: Path) -> None:
    data = tmp_path / "prod"
    port = free_port()
    # `liandong serve` marks its data dir before it listens (its refusal comes first: use loopback).
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=_env(data),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while used_by(data) != "serve":
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(20)
    settings = load_settings(None, data_dir=data)
    with pytest.raises(DataDirInUse, match="`liandong serve` has used it"):
        check_demo_start(settings, "127.0.0.1", insecure=False)
    assert used_by(data) == "serve"  # not taken over


def test_demo_cli_refuses_before_seeding(tmp_path: Path) -> None:
    data = tmp_path / "prod"
    data.mkdir()
    (data / MARKER).write_text("serve\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fixtures.demo", "--data-dir", str(data), "--port", str(free_port())],
        cwd=ROOT,
        env=_env(tmp_path / "elsewhere"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "will not seed" in proc.stderr and "liandong serve" in proc.stderr
    assert not (data / "liandong.db").exists()


def test_demo_seeds_only_new_empty_or_its_own_data_dirs(tmp_path: Path) -> None:
    check_demo_may_seed(tmp_path / "new")  # does not exist yet
    empty = tmp_path / "empty"
    empty.mkdir()
    check_demo_may_seed(empty)
    other = tmp_path / "other"  # data from before markers existed (an old `var`)
    other.mkdir()
    (other / "liandong.db").write_bytes(b"")
    with pytest.raises(DataDirInUse, match="not the demo's"):
        check_demo_may_seed(other)
    own = tmp_path / "own"
    settings = load_settings(None, data_dir=own)
    assert check_demo_start(settings, "127.0.0.1", insecure=False) is None
    assert used_by(own) == "demo"
    (own / "liandong.db").write_bytes(b"")
    check_demo_start(settings, "127.0.0.1", insecure=False)  # its own: seeded again


def test_demo_refuses_plain_http_beyond_loopback_and_foreign_databases(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path / "d")
    with pytest.raises(ListenRefused):
        check_demo_start(settings, "0.0.0.0", insecure=False)
    assert check_demo_start(settings, "0.0.0.0", insecure=True) is not None
    pg = load_settings(None, data_dir=tmp_path / "e", database={"url": "postgresql+psycopg://u@127.0.0.1/x"})
    with pytest.raises(DataDirInUse, match=r"database\.url"):
        check_demo_start(pg, "127.0.0.1", insecure=False)


def test_a_cluster_node_over_tls_advertises_https(tmp_path: Path) -> None:
    from gateway.cluster.node import node_identity

    cert, key = _self_signed(tmp_path)
    plain = load_settings(None, cluster={"node_id": "n1"})
    assert node_identity(plain) == ("n1", "http://127.0.0.1:8000")
    tls = load_settings(None, cluster={"node_id": "n1"}, server={"ssl_certfile": cert, "ssl_keyfile": key})
    assert node_identity(tls) == ("n1", "https://127.0.0.1:8000")
