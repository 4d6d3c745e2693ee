"""The `http` section of the service configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IceServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: str | list[str] = Field(description="stun:host:port or turn:host:port, one or a list")
    username: str | None = Field(None, description="TURN user name")
    credential: str | None = Field(None, description="TURN password")


class HttpConfig(BaseModel):
    """Where the API and live view listen, who may use them, and the limits that protect the worker."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="bind address; anything but loopback needs token or users")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0: a free one, logged at start)")
    token: str | None = Field(
        None, min_length=16, description="bearer token for the API (and the page's login)"
    )
    users: dict[str, str] = Field(default_factory=dict, description="page logins: user name → password")
    open_paths: list[str] = Field(
        default_factory=lambda: ["/metrics", "/healthz"], description="paths reachable without credentials"
    )
    max_viewers_per_camera: int = Field(
        4, ge=1, description="open live streams (WebRTC and MJPEG) per camera"
    )
    max_viewers_total: int = Field(16, ge=1, description="open live streams of all cameras together")
    max_event_clients: int = Field(64, ge=1, description="concurrent /api/events streams")
    max_sdp_bytes: int = Field(65536, ge=1024, description="largest WebRTC offer accepted")
    offer_rate_per_minute: int = Field(30, ge=1, description="offers per client address per minute")
    ice_servers: list[IceServer] = Field(default_factory=list, description="STUN/TURN; none needed on a LAN")
    live_fps: float = Field(15.0, gt=0, le=60, description="most frames a second sent to one viewer")
    live_max_width: int = Field(1280, ge=64, description="wider annotated frames are scaled down to this")
    jpeg_quality: int = Field(80, ge=10, le=100, description="snapshot and MJPEG quality")
    connect_timeout_s: float = Field(20.0, gt=0, description="a peer not connected by then is closed")
    stall_timeout_s: float = Field(
        10.0, gt=0, description="a stream client that reads nothing this long is dropped"
    )
    session_hours: float = Field(12.0, gt=0, description="how long a page login lasts")
