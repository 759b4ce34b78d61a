"""Liandong settings: one pydantic model per concern, loaded once and passed down.

Sources, highest priority first: explicit init values, ``LIANDONG_*`` environment variables
(nested with ``__``, e.g. ``LIANDONG_WEBRTC__ICE_SERVERS``), the TOML file given by ``--config``
(or ``LIANDONG_CONFIG``), then the defaults below. Unknown keys are an error everywhere.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from acl.settings import AclSettings
from camera_registry.settings import CameraSettings, VehicleSettings
from gateway.alarms.settings import NotifySettings
from gateway.ptz.settings import PtzSettings
from gateway.rtsp.settings import RtspOutSettings
from gateway.sessions import SessionSettings
from gb28181.settings import Gb28181Settings
from recording.settings import RecordingSettings
from snapshot.settings import SnapshotSettings
from streams.settings import HubSettings, TranscoderSettings

__all__ = [
    "AclSettings",
    "AlarmSettings",
    "AuthSettings",
    "CameraSettings",
    "ClusterSettings",
    "ConsoleSettings",
    "DatabaseSettings",
    "EventSettings",
    "HlsSettings",
    "HubSettings",
    "LogSettings",
    "RtspOutSettings",
    "ServerSettings",
    "Settings",
    "SnapshotSettings",
    "TranscoderSettings",
    "VehicleSettings",
    "WebRTCSettings",
    "load_settings",
]


def _check_redis_url(v: str | None) -> str | None:
    """``redis://``, ``rediss://`` or ``unix://``; empty means no Redis."""
    if v and not v.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("redis_url must start with redis://, rediss:// or unix://")
    return v or None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    """Where the HTTP server listens and how it trusts proxies."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    head_timeout_s: float = Field(
        10.0, gt=0, le=300, description="A client must send a whole request head this soon, or is disconnected."
    )
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="A request body that stalls this long gets 408.")
    keep_alive_s: int = Field(30, ge=1, le=3600, description="Idle kept-alive connections close after this.")
    public_url: str | None = Field(None, description="Base URL printed by the demo and used in links.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Addresses or CIDRs of reverse proxies whose X-Forwarded-For (and -Proto) is believed; the "
        "client is the right-most hop not in this list. Empty: the connecting address is the client.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"trusted_proxies: '{item[:60]}' is not an IP address or CIDR") from None
        return out

    ssl_certfile: Path | None = Field(None, description="PEM certificate (chain): serve HTTPS. With ssl_keyfile.")
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile.")
    insecure: bool = Field(
        False, description="Listen beyond loopback without TLS anyway (logins and cookies cross the network in clear)."
    )

    @model_validator(mode="after")
    def _tls_files(self) -> ServerSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile: give both or neither")
        for name in ("ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None:
                try:
                    with open(path, "rb"):
                        pass
                except OSError as e:
                    raise ValueError(f"{name}: {path} cannot be read ({e.strerror})") from None
        return self

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS."""
        return self.ssl_certfile is not None


class DatabaseSettings(_Section):
    """The project database. Empty url = SQLite file ``liandong.db`` under the data dir."""

    url: str | None = None
    echo: bool = False


class LogSettings(_Section):
    """Logging: readable text by default, JSON lines for log shippers."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class AuthSettings(_Section):
    """Identity: tokens, cookies and login throttling."""

    token_ttl_s: int = Field(8 * 3600, ge=60, le=30 * 24 * 3600)
    cookie_name: str = "liandong_session"
    cookie_secure: bool = Field(
        False, description="Session cookies only over HTTPS. Unset: true exactly when the server has TLS."
    )
    stream_token_ttl_s: int = Field(300, ge=10, le=24 * 3600)
    login_max_failures: int = Field(
        5, ge=1, le=100, description="Failed logins per window: an address is then refused, a username slowed."
    )
    login_window_s: int = Field(
        300, ge=1, le=86400, description="Failures are remembered this long (a username's: after its last one)."
    )
    login_delay_s: float = Field(
        1.0, gt=0, le=60, description="A username's first delay after login_max_failures; it doubles per failure."
    )
    login_delay_max_s: float = Field(
        30.0, gt=0, le=3600, description="Longest delay of a username (never a lockout: the right password gets in)."
    )
    login_verify_concurrency: int = Field(
        2, ge=1, le=64, description="Password checks (argon2, in worker threads) running at once."
    )
    login_verify_queue: int = Field(
        32, ge=0, le=10_000, description="Logins waiting for a password check; beyond it logins get 503 + Retry-After."
    )
    refusal_window_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Anonymous refusals (401s, rejected alarms, failed and throttled logins) are audited as one entry "
        "per address and kind when first seen and one with the exact count when this window closes.",
    )
    refusal_addresses: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Addresses tracked per window; refusals from further addresses are counted together (address *).",
    )
    login_cache_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description="How long a validated bearer token or session cookie is trusted without a database lookup "
        "(0: look up every request). Logout, revocation and user changes made through this node or another "
        "node of the cluster drop it at once; changes made with the CLI take effect within this time.",
    )
    login_cache_size: int = Field(10_000, ge=1, le=1_000_000, description="Validated logins kept (least recent go).")


class WebRTCSettings(_Section):
    """WebRTC (WHEP). No ICE server is ever used unless listed here."""

    enabled: bool = True
    ice_servers: list[str] = Field(default_factory=list, description="stun:/turn: URLs; empty = none.")
    host_addresses: list[str] | None = Field(
        None,
        description=(
            "Addresses offered as host ICE candidates; [] = every interface. Unset: 127.0.0.1 when the"
            " server listens on loopback, else every interface address (logged at start)."
        ),
    )
    max_sdp_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    session_timeout_s: float = Field(15.0, gt=0, le=600, description="ICE connect deadline.")
    open_timeout_s: float = Field(8.0, gt=0, le=60, description="Wait this long for a cold camera to answer.")
    egress: Literal["shared", "per_viewer"] = Field(
        "shared",
        description=(
            "shared: each access unit is packetized once per camera and every viewer only gets its own RTP"
            " header and SRTP (gateway/webrtc/fanout.py); per_viewer: aiortc packetizes for every viewer"
            " (the old path, kept to compare)."
        ),
    )

    @field_validator("host_addresses")
    @classmethod
    def _ip_addresses(cls, v: list[str] | None) -> list[str] | None:
        for a in v or []:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address (host candidates are addresses, not names)") from None
        return v


class HlsSettings(_Section):
    """Low-latency HLS out (fMP4 parts, blocking playlist reload)."""

    enabled: bool = True
    part_duration_s: float = Field(0.2, ge=0.1, le=2, description="Target length of an LL-HLS part.")
    segment_min_s: float = Field(1.0, ge=0.2, le=10, description="A segment ends at the first keyframe after this.")
    segment_count: int = Field(6, ge=3, le=60, description="Complete segments kept per camera.")
    idle_stop_s: float = Field(20.0, ge=1, le=3600, description="Stop a muxer this long after its last request.")
    session_idle_s: float = Field(15.0, ge=2, le=600, description="A player that asked nothing for this long has left.")
    block_timeout_s: float = Field(6.0, ge=1, le=60, description="Longest wait of a blocking playlist/part request.")
    always_remux: bool = Field(
        True, description="Mux every camera being pulled (H.264) so its first HLS viewer starts at once."
    )


_HOURS = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"


class AlarmRoute(_Section):
    """Which departments are on duty for alarms of a type in an area (``*`` matches any)."""

    area: str = Field("*", min_length=1, max_length=64)
    type: str = Field("*", min_length=1, max_length=32)
    departments: list[str] = Field(min_length=1, max_length=50)
    hours: str = Field("", pattern=_HOURS + "|^$", description="Local HH:MM-HH:MM on duty (may wrap midnight).")


class AlarmSettings(_Section):
    """Panic alarms and the incidents they open."""

    signature_window_s: float = Field(300.0, ge=1, le=3600, description="Accepted clock difference of a source.")
    nearby_fixed: int = Field(3, ge=0, le=20, description="Fixed cameras opened around the alarm.")
    radius_m: float = Field(800.0, gt=0, le=20_000)
    grant_minutes: int | None = Field(
        None, ge=1, le=7 * 24 * 60, description="Incident grants expire after this; unset: when the case closes."
    )
    prewarm_s: float = Field(60.0, ge=0, le=3600)
    onsite_hours: dict[str, float] = Field(
        default_factory=lambda: {"*": 3.0}, description="Per category; the category table (API) overrides these."
    )
    resolve_hours: dict[str, float] = Field(default_factory=lambda: {"*": 168.0})
    routing: list[AlarmRoute] = Field(
        default_factory=lambda: [AlarmRoute(departments=["district", "police"])],
        description="Also: admins add routes through the API, and the area's sub-district centre is always on duty.",
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone of routing hours.")
    follow_every_s: float = Field(2.0, ge=0.1, le=600, description="A moving bus re-picks nearby cameras this often.")
    overdue_check_s: float = Field(30.0, ge=1, le=3600, description="How often passed deadlines are announced.")
    notify: NotifySettings = NotifySettings()
    attachment_max_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024, description="Per case photo (server.max_body_bytes applies too)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class EventSettings(_Section):
    """Live events to consoles (Server-Sent Events)."""

    kept: int = Field(10_000, ge=100, le=1_000_000, description="Events kept for Last-Event-ID resume.")
    heartbeat_s: float = Field(15.0, ge=1, le=300, description="Keep-alive comment and login re-check interval.")
    max_streams_per_user: int = Field(8, ge=1, le=100)
    queue: int = Field(1000, ge=10, le=100_000, description="Events a slow console may lag before it is cut off.")


class ConsoleSettings(_Section):
    """The operator console's map (a control room often has no internet: no tiles by default)."""

    map_tile_url: str = Field(
        "",
        max_length=500,
        pattern=r"^$|^https?://[^\s\"'<>]+$",
        description="XYZ tile template such as https://tiles.example/{z}/{x}/{y}.png; empty = no tile layer "
        "(the map still shows the district boundary, cameras and vehicles). Its origin is added to img-src.",
    )
    map_attribution: str = Field("", max_length=200, description="Credit shown under the tiles.")
    map_max_zoom: int = Field(19, ge=1, le=24)
    vehicle_refresh_s: float = Field(
        2.0, ge=0.5, le=60, description="How often an open map asks for the visible vehicles' positions."
    )

    @field_validator("map_tile_url")
    @classmethod
    def _has_xyz(cls, v: str) -> str:
        if v and not all(k in v for k in ("{z}", "{x}", "{y}")):
            raise ValueError("map_tile_url needs {z}, {x} and {y}")
        return v


class ClusterSettings(_Section):
    """Several gateway nodes sharing Redis and one database (off unless ``redis_url`` is set)."""

    redis_url: str | None = Field(None, description="Redis shared by the nodes; empty = single node, no Redis.")
    node_id: str = Field(
        "", max_length=64, pattern=r"^[A-Za-z0-9_.-]*$", description="Unique per node; empty = the host name."
    )
    advertise_url: str | None = Field(
        None, description="Base URL other nodes redirect viewers to (this node directly, or its route on the LB)."
    )
    console_origins: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Origins the consoles are opened at besides the nodes' own (e.g. the load balancer's "
        "https://video.example.org), allowed to follow a redirect to a node's advertise_url on another origin.",
    )
    lease_s: float = Field(
        2.5, ge=1, le=60, description="Camera ownership lease; a dead node's cameras free up after it."
    )
    renew_s: float = Field(0.5, gt=0, le=20, description="How often leases and the node heartbeat are renewed.")
    redis_timeout_s: float = Field(0.4, gt=0, le=10, description="Timeout of one coordination call to Redis.")
    outage_grace_s: float = Field(
        15.0, ge=0, le=3600, description="Viewers wait this long for Redis to come back before they are sent elsewhere."
    )
    events_kept: int = Field(10_000, ge=100, le=1_000_000, description="Events kept in the Redis Stream (MAXLEN ~).")
    placement: Literal["least_loaded", "first"] = Field(
        "least_loaded",
        description="Where a camera nobody pulls opens: the least-loaded node, or the node its first viewer reached.",
    )
    placement_slack: int = Field(
        2, ge=1, le=10_000, description="least_loaded: cameras a node may hold beyond the least-loaded node's count."
    )
    event_group_idle_s: float = Field(
        3600.0,
        ge=5,
        le=30 * 86400,
        description="A node without heartbeat whose event consumer group was idle this long loses the group.",
    )

    _redis_scheme = field_validator("redis_url")(_check_redis_url)

    @field_validator("advertise_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("advertise_url must start with http:// or https://")
        return v.rstrip("/") if v else None

    @field_validator("console_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        out = []
        for o in v:
            u = urlsplit(o)
            if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query:
                raise ValueError(f"console_origins: '{o[:100]}' is not an origin (scheme://host[:port], no path)")
            out.append(o.rstrip("/").lower())
        return out

    @model_validator(mode="after")
    def _renew_well_within_lease(self) -> ClusterSettings:
        # A node stops pulling renew_s + redis_timeout_s before its lease ends; that must leave time.
        if 2 * self.renew_s + self.redis_timeout_s >= self.lease_s:
            raise ValueError("lease_s must exceed 2 * renew_s + redis_timeout_s")
        return self

    @property
    def enabled(self) -> bool:
        """Whether this node is part of a cluster."""
        return self.redis_url is not None


class Settings(BaseSettings):
    """All of Liandong's settings."""

    model_config = SettingsConfigDict(
        env_prefix="LIANDONG_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(Path("var"), description="SQLite database, keys and other state.")
    redis_url: str | None = Field(
        None, description="Redis for shared caches (snapshots, positions); empty = cluster.redis_url, else in process."
    )
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()
    auth: AuthSettings = AuthSettings()
    acl: AclSettings = AclSettings()
    hub: HubSettings = HubSettings()
    webrtc: WebRTCSettings = WebRTCSettings()
    hls: HlsSettings = HlsSettings()
    transcoder: TranscoderSettings = TranscoderSettings()
    snapshot: SnapshotSettings = SnapshotSettings()
    recording: RecordingSettings = RecordingSettings()
    vehicles: VehicleSettings = VehicleSettings()
    alarms: AlarmSettings = AlarmSettings()
    events: EventSettings = EventSettings()
    console: ConsoleSettings = ConsoleSettings()
    cluster: ClusterSettings = ClusterSettings()
    cameras: CameraSettings = CameraSettings()
    sessions: SessionSettings = SessionSettings()
    gb28181: Gb28181Settings = Gb28181Settings()
    ptz: PtzSettings = PtzSettings()
    rtsp_out: RtspOutSettings = RtspOutSettings()

    _redis_scheme = field_validator("redis_url")(_check_redis_url)

    @model_validator(mode="after")
    def _secure_cookies_with_tls(self) -> Settings:
        # Cookies follow TLS unless auth.cookie_secure is given (true behind a TLS-terminating proxy).
        if self.server.tls and "cookie_secure" not in self.auth.model_fields_set:
            object.__setattr__(self, "auth", self.auth.model_copy(update={"cookie_secure": True}))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _CONFIG_FILE.get("path")
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @property
    def shared_redis_url(self) -> str | None:
        """Redis for shared caches (snapshots, vehicle positions): ``redis_url``, else the cluster's."""
        return self.redis_url or self.cluster.redis_url

    @property
    def database_url(self) -> str:
        """The SQLAlchemy async URL of the project database."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'liandong.db').resolve()}"


# The TOML path is handed to the source hook for the duration of one load_settings() call.
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


class SettingsError(ValueError):
    """The configuration file or environment is invalid."""


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config`` (or ``$LIANDONG_CONFIG``), the environment and ``overrides``."""
    path = config or os.environ.get("LIANDONG_CONFIG") or None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"config file not found: {path}")
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE["path"] = None
