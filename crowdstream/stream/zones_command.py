"""`crowdstream zones CAMERA`: a camera's zones as YAML, ready to paste under the camera in a config
file: from the running service (what the page's editor shows, drawn or not yet saved) or, with -c,
from a config file. Only the standard library talks to the service, so the command starts at once."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.zone_file import zones_yaml

DEFAULT_URL = "http://127.0.0.1:8080"


def service_zones(url: str, camera: str, token: str | None) -> list[dict]:
    """GET /api/cameras/CAMERA/zones of the service at `url`; one-line errors for what goes wrong."""
    address = f"{url.rstrip('/')}/api/cameras/{urllib.parse.quote(camera, safe='')}/zones"
    request = urllib.request.Request(address, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["zones"]
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise CrowdstreamError(f"{url} needs a token: --token or CROWDSTREAM_HTTP__TOKEN") from None
        if exc.code == 404:
            raise CrowdstreamError(f"{url} has no camera {camera!r}") from None
        raise CrowdstreamError(f"{address}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CrowdstreamError(
            f"--url {url}: cannot reach the service ({reason}); is crowdstream serve running there?"
        ) from None


def file_zones(path: Path, camera: str) -> list[dict]:
    from crowdstream.stream.config import load_config

    config = load_config(path)
    for entry in config.cameras:
        if entry.id == camera:
            return [zone.model_dump(mode="json") for zone in entry.zones]
    known = ", ".join(entry.id for entry in config.cameras)
    raise CrowdstreamError(f"{path} has no camera {camera!r} (it has: {known})")


def run_zones(camera: str, url: str, token: str | None, config: Path | None) -> int:
    zones = file_zones(config, camera) if config is not None else service_zones(url, camera, token)
    where = config if config is not None else url
    print(f"# zones of camera {camera} ({where}): paste under the camera in the config file")
    print(zones_yaml(zones), end="")
    return 0
