"""Who may use the API and the page.

On loopback the service is open, as a developer tool should be. Bound anywhere else it refuses to start
unless a bearer token or page users are configured (`check_bind`). API clients send
`Authorization: Bearer <token>`; people log in on `/login` with a user's password (or the token) and get
a signed, HTTP-only session cookie, which the page's own requests (fetch, EventSource, MJPEG) carry.
Every secret comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from aiohttp import web

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.errors import Handler, json_error
from crowdstream.stream.web.limits import RateLimiter

SESSION_COOKIE = "crowdstream_session"
PUBLIC_PATHS = ("/login", "/static/style.css", "/static/login.js")
LOGIN_ATTEMPTS_PER_MINUTE = 10


class InsecureBindError(CrowdstreamError):
    """The service would listen beyond this machine with nobody required to log in."""


def is_loopback_host(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(http: HttpConfig) -> None:
    """Refuse to listen on a non-loopback address without credentials (call before binding)."""
    if not is_loopback_host(http.host) and not http.token and not http.users:
        raise InsecureBindError(
            f"http.host is {http.host!r} but neither http.token nor http.users is set; "
            "set one of them, or bind to 127.0.0.1"
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class Access:
    """Checks credentials and signs session cookies with a per-process key (sessions end on restart)."""

    http: HttpConfig
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def enabled(self) -> bool:
        return bool(self.http.token or self.http.users)

    def check_login(self, user: str, password: str) -> bool:
        """A configured user's password, or the token with any user name. Unknown users still cost a
        comparison so that timing does not reveal which names exist."""
        ok = bool(self.http.token) and _same(password, self.http.token or "")
        expected = self.http.users.get(user)
        return _same(password, expected if expected is not None else secrets.token_hex(16)) or ok

    def check_bearer(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return bool(self.http.token) and scheme.lower() == "bearer" and _same(token.strip(), self.http.token)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, user: str) -> str:
        payload = f"{quote(user, safe='')}:{int(time.time() + self.http.session_hours * 3600)}"
        return f"{payload}:{self._sign(payload)}"

    def session_user(self, cookie: str) -> str | None:
        """The user a valid, unexpired session cookie belongs to."""
        payload, _, signature = cookie.rpartition(":")
        user, _, expires = payload.partition(":")
        if not _same(signature, self._sign(payload)) or not expires.isdigit():
            return None
        return unquote(user) if int(expires) > time.time() else None

    def allows(self, request: web.Request) -> bool:
        if not self.enabled or request.path in self.http.open_paths or request.path in PUBLIC_PATHS:
            return True
        if self.check_bearer(request.headers.get("Authorization", "")):
            return True
        return self.session_user(request.cookies.get(SESSION_COOKIE, "")) is not None


def access_middleware(access: Access):
    """Refuse requests without valid credentials: 401 JSON for the API, a redirect to the login page
    for the page itself."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if access.allows(request):
            return await handler(request)
        if request.method == "GET" and (request.path == "/" or request.path.startswith("/static/")):
            raise web.HTTPFound("/login")
        raise json_error(
            web.HTTPUnauthorized,
            "missing or invalid credentials",
            headers={"WWW-Authenticate": 'Bearer realm="crowdstream"'},
        )

    return middleware


class Login:
    """The page's login: `GET /login` shows the form, `POST /login` checks it (rate-limited per address)
    and sets the session cookie, `POST /logout` clears it."""

    def __init__(self, access: Access, form: Path) -> None:
        self.access, self.form = access, form
        self.rate = RateLimiter(LOGIN_ATTEMPTS_PER_MINUTE)

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.form, headers={"Cache-Control": "no-store"})

    async def submit(self, request: web.Request) -> web.Response:
        self.rate.check(request.remote or "")
        form = await request.post()
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        if not self.access.enabled or not self.access.check_login(user, password):
            raise web.HTTPSeeOther("/login?failed=1")
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            SESSION_COOKIE,
            self.access.session_cookie(user),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            max_age=int(self.access.http.session_hours * 3600),
            path="/",
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response
