"""Access control and limits of the web app, with real HTTP clients: bind checks, bearer tokens, the
page login, viewer limits, the offer rate limit, body size, and malformed or hostile input answered
with 4xx JSON, never a 500 (including hypothesis and schemathesis fuzzing)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.web.app import LIVE_VIEW, VIEWER_SLOTS
from crowdstream.stream.web.auth import check_bind
from crowdstream.stream.web.config import HttpConfig
from tests.web_support import TOKEN, get_json, serve

BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def real_offer() -> str:
    """An SDP offer for receiving video, made by aiortc as a viewer would."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:  # unsafe: IP hosts
        yield client


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_non_loopback_bind_without_credentials_refuses_to_start(host: str) -> None:
    with pytest.raises(CrowdstreamError, match="neither http.token nor http.users"):
        check_bind(HttpConfig(host=host))
    check_bind(HttpConfig(host=host, token=TOKEN))
    check_bind(HttpConfig(host=host, users={"ops": "a long password"}))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_bind_needs_no_credentials(host: str) -> None:
    check_bind(HttpConfig(host=host))


async def test_create_app_refuses_an_open_public_bind() -> None:
    with pytest.raises(CrowdstreamError):
        async with serve(HttpConfig(host="0.0.0.0")):
            pass


async def test_token_is_required_when_configured(session) -> None:
    async with serve(HttpConfig(token=TOKEN)) as served:
        status, body = await get_json(session, f"{served.url}/api/cameras")
        assert status == 401 and body == {"error": "missing or invalid credentials", "status": 401}
        for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}", "Bearer "):
            status, _ = await get_json(
                session, f"{served.url}/api/cameras", headers={"Authorization": header}
            )
            assert status == 401, header
        async with session.get(f"{served.url}/api/cameras") as response:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        status, body = await get_json(session, f"{served.url}/api/cameras", headers=BEARER)
        assert status == 200 and len(body["cameras"]) == 2
        for path in ("/api/cameras/gate/snapshot.jpg", "/api/events", "/api/openapi.json", "/readyz"):
            async with session.get(served.url + path) as response:
                assert response.status == 401, path
        async with session.post(f"{served.url}/api/cameras/gate/offer", json={}) as response:
            assert response.status == 401
        for path in ("/healthz", "/metrics", "/login", "/static/style.css"):
            async with session.get(served.url + path) as response:
                assert response.status == 200, path
        for path in ("/", "/static/app.js"):
            async with session.get(served.url + path, allow_redirects=False) as response:
                assert response.status == 302 and response.headers["Location"] == "/login"


async def test_open_paths_are_configurable(session) -> None:
    async with serve(HttpConfig(token=TOKEN, open_paths=[])) as served:
        async with session.get(f"{served.url}/metrics") as response:
            assert response.status == 401
        async with session.get(f"{served.url}/metrics", headers=BEARER) as response:
            assert response.status == 200


async def login(session: aiohttp.ClientSession, url: str, user: str, password: str) -> aiohttp.ClientResponse:
    async with session.post(
        f"{url}/login", data={"user": user, "password": password}, allow_redirects=False
    ) as response:
        return response


async def test_page_login_sets_a_signed_session(session) -> None:
    async with serve(HttpConfig(users={"ops": "correct horse battery"}, token=TOKEN)) as served:
        failed = await login(session, served.url, "ops", "wrong")
        assert failed.status == 303 and failed.headers["Location"] == "/login?failed=1"
        assert not session.cookie_jar.filter_cookies(served.url)
        failed = await login(session, served.url, "nobody", "correct horse battery")
        assert failed.headers["Location"] == "/login?failed=1"
        ok = await login(session, served.url, "ops", "correct horse battery")
        assert ok.status == 303 and ok.headers["Location"] == "/"
        cookie = ok.cookies["crowdstream_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with session.get(f"{served.url}/", allow_redirects=False) as response:
            assert response.status == 200
        status, _ = await get_json(session, f"{served.url}/api/cameras")
        assert status == 200
        user, expires, signature = cookie.value.split(":")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as bare:
            status, _ = await get_json(
                bare, f"{served.url}/api/cameras", headers={"Cookie": f"crowdstream_session={cookie.value}"}
            )
            assert status == 200
            for forged in (f"admin:{expires}:{signature}", f"{user}:{int(expires) + 1}:{signature}", "x", ""):
                status, _ = await get_json(
                    bare, f"{served.url}/api/cameras", headers={"Cookie": f"crowdstream_session={forged}"}
                )
                assert status == 401, forged
        async with session.post(f"{served.url}/logout", allow_redirects=False) as response:
            assert response.status == 303
        status, _ = await get_json(session, f"{served.url}/api/cameras")
        assert status == 401
        token_login = await login(session, served.url, "", TOKEN)
        assert token_login.headers["Location"] == "/"


async def test_sessions_expire(session) -> None:
    async with (
        serve(HttpConfig(token=TOKEN, session_hours=2 / 3600)) as served,
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as bare,
    ):
        cookie = (await login(session, served.url, "", TOKEN)).cookies["crowdstream_session"].value
        headers = {"Cookie": f"crowdstream_session={cookie}"}
        status, _ = await get_json(bare, f"{served.url}/api/cameras", headers=headers)
        assert status == 200
        await asyncio.sleep(3.1)
        status, _ = await get_json(bare, f"{served.url}/api/cameras", headers=headers)
        assert status == 401


async def test_logins_are_rate_limited(session) -> None:
    async with serve(HttpConfig(token=TOKEN)) as served:
        statuses = [(await login(session, served.url, "x", "guess")).status for _ in range(12)]
        assert statuses[:10] == [303] * 10 and statuses[10:] == [429, 429]


JSON = {"Content-Type": "application/json"}


async def test_offer_errors_are_json_4xx(session) -> None:
    offer = await real_offer()
    audio_only = offer.split("m=video")[0] + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\n"
    bodies = {
        b"not json": 400,
        b"[]": 400,
        b'{"type": "answer", "sdp": "v=0"}': 400,
        b'{"type": "offer", "sdp": 5}': 400,
        b'{"type": "offer", "sdp": "v=0\\r\\nm=video 9 RTP 96\\r\\n"}': 400,
        b"\xff\xfe\x00": 400,
        json.dumps({"type": "offer", "sdp": offer[: len(offer) // 3]}).encode(): 400,
        json.dumps({"type": "offer", "sdp": audio_only}).encode(): 400,
        json.dumps({"type": "offer", "sdp": offer.replace("a=fingerprint", "a=x")}).encode(): 400,
    }
    async with serve(HttpConfig(offer_rate_per_minute=100)) as served:
        for body, expected in bodies.items():
            async with session.post(
                f"{served.url}/api/cameras/gate/offer", data=body, headers=JSON
            ) as response:
                assert response.status == expected, (body[:60], await response.text())
                assert (await response.json())["status"] == expected
        async with session.post(
            f"{served.url}/api/cameras/nope/offer", json={"type": "offer", "sdp": offer}
        ) as r:
            assert r.status == 404
        assert served.app[VIEWER_SLOTS].open == {} and not served.app[LIVE_VIEW].viewers


async def test_oversized_offers_are_413(session) -> None:
    async with serve(HttpConfig(max_sdp_bytes=4096)) as served:
        huge = json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 2000})
        async with session.post(f"{served.url}/api/cameras/gate/offer", data=huge, headers=JSON) as response:
            assert response.status == 413 and (await response.json())["status"] == 413

        async def chunks():
            for _ in range(10):
                yield b"x" * 1000

        async with session.post(
            f"{served.url}/api/cameras/gate/offer", data=chunks(), headers=JSON
        ) as response:
            assert response.status == 413 and (await response.json())["status"] == 413


async def test_offer_flood_is_rate_limited(session) -> None:
    offer = await real_offer()
    async with serve(HttpConfig(offer_rate_per_minute=3)) as served:
        statuses, retry = [], None
        for _ in range(6):
            async with session.post(
                f"{served.url}/api/cameras/nope/offer", json={"type": "offer", "sdp": offer}
            ) as response:
                statuses.append(response.status)
                retry = response.headers.get("Retry-After", retry)
        assert statuses == [404, 404, 404, 429, 429, 429]
        assert retry is not None and 1 <= int(retry) <= 20


async def open_mjpeg(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    response = await session.get(url)
    if response.status == 200:
        await response.content.readuntil(b"\r\n\r\n")  # the first part's headers: the stream is live
    return response


async def test_viewer_limits_per_camera_and_total(session) -> None:
    async with serve(HttpConfig(max_viewers_per_camera=2, max_viewers_total=3)) as served:
        gate, hall = f"{served.url}/api/cameras/gate/mjpeg", f"{served.url}/api/cameras/hall/mjpeg"
        streams = [await open_mjpeg(session, gate), await open_mjpeg(session, gate)]
        assert [s.status for s in streams] == [200, 200]
        full = await open_mjpeg(session, gate)
        assert full.status == 503 and "camera 'gate'" in (await full.json())["error"]
        assert full.headers["Retry-After"] == "10"
        streams.append(await open_mjpeg(session, hall))
        assert streams[-1].status == 200
        total = await open_mjpeg(session, hall)
        assert total.status == 503 and "limit of 3 viewers" in (await total.json())["error"]
        status, body = await get_json(session, f"{served.url}/api/cameras/gate")
        assert body["viewers"] == 2 and served.hub.watching("gate")
        async with session.get(f"{served.url}/metrics") as response:
            metrics = await response.text()
        assert (
            'crowd_web_viewers{camera="gate"} 2.0' in metrics
            and 'crowd_web_viewers{camera="hall"} 1.0' in metrics
        )
        offer = await real_offer()
        async with session.post(
            f"{served.url}/api/cameras/hall/offer", json={"type": "offer", "sdp": offer}
        ) as r:
            assert r.status == 503
        streams.pop(0).close()
        for _ in range(100):
            if served.hub.viewers.get("gate") == 1:
                break
            await asyncio.sleep(0.05)
        again = await open_mjpeg(session, gate)
        assert again.status == 200
        for stream in [*streams, again]:
            stream.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sdp=st.one_of(
        st.text(max_size=300),
        st.lists(
            st.sampled_from(
                [
                    "v=0",
                    "m=video 9 UDP/TLS/RTP/SAVPF 96",
                    "a=rtpmap:96 VP8/90000",
                    "a=setup:actpass",
                    "a=ice-ufrag:x",
                    "a=ice-pwd:y",
                    "a=fingerprint:sha-256 00",
                    "c=IN IP4 0.0.0.0",
                    "a=mid:0",
                    "a=recvonly",
                    "m=audio 9 RTP/AVP 0",
                    "o=- 1 1 IN IP4 0.0.0.0",
                    "s=-",
                    "t=0 0",
                    "a=group:BUNDLE 0",
                    "a=candidate:1 1 udp 1 1.2.3.4 5 typ host",
                ]
            ),
            max_size=14,
        ).map("\r\n".join),
    )
)
def test_fuzzed_offers_never_cause_a_server_error(sdp: str) -> None:
    async def post() -> int:
        async with (
            serve(HttpConfig(offer_rate_per_minute=1000, connect_timeout_s=1)) as served,
            aiohttp.ClientSession() as client,
            client.post(
                f"{served.url}/api/cameras/gate/offer", json={"type": "offer", "sdp": sdp}
            ) as response,
        ):
            return response.status

    assert asyncio.run(post()) in (200, 400)


SCHEMATHESIS = shutil.which("st", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed (pip install schemathesis)")
async def test_schemathesis_finds_no_server_errors_or_schema_violations(redis_url: str) -> None:
    async with serve(
        HttpConfig(offer_rate_per_minute=10_000, connect_timeout_s=1), redis_url=redis_url
    ) as served:
        process = await asyncio.create_subprocess_exec(
            SCHEMATHESIS,
            "run",
            f"{served.url}/api/openapi.json",
            "--url",
            served.url,
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--exclude-path-regex",
            "mjpeg|events",
            "--max-examples",
            "15",
            "--request-timeout",
            "10",
            "--generation-deterministic",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 300)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail("schemathesis did not finish in 300 s")
    assert process.returncode == 0, output.decode()[-4000:]
