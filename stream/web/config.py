"""The `http` section of the service configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IceServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class HttpConfig(BaseModel):
    """Where the API and live view listen, who may use them, and the limits that protect the worker."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="bind address; anything but loopback needs token or users")
    port: int = Field(8080, ge=0, le=65535)
    token: str | None = Field(None, description="bearer token for the API (and the page's login)")
    users: dict[str, str] = Field(default_factory=dict, description="page logins: user name → password")
    open_paths: list[str] = Field(default_factory=lambda: ["/metrics", "/healthz"],
                                  description="paths reachable without credentials")
    max_viewers_per_camera: int = Field(4, ge=1)
    max_viewers_total: int = Field(16, ge=1)
    max_sdp_bytes: int = Field(65536, ge=1024)
    offer_rate_per_minute: int = Field(30, ge=1)
    ice_servers: list[IceServer] = Field(default_factory=list, description="STUN/TURN; none needed on a LAN")
