"""The zone editor in Debian's Chromium over the real service started from a config file: a zone drawn
with the mouse is validated, written into that file (its comments kept, the previous version kept as
.bak) and counted at once (/api/cameras shows it); then it is dragged and the old zone deleted."""

from __future__ import annotations

import aiohttp
import pytest
import yaml

from crowdstream.stream.config import load_config
from crowdstream.stream.service import Service
from tests.conftest import ARTIFACTS, eventually, until_true
from tests.web_support import get_json

CONFIG = """\
# the venue's cameras (this comment must survive the editor)
cameras:
  - id: demo
    name: Concourse
    url: demo
    zones:
      - name: old
        polygon: [[10, 10], [200, 10], [200, 200]]   # drawn by hand
http:
  port: 0
redis:
  embedded: false
"""


async def api_zones(url: str) -> list[dict]:
    async with aiohttp.ClientSession() as session:
        _, body = await get_json(session, f"{url}/api/cameras/demo")
    return body["zones"]


async def test_a_zone_drawn_with_the_mouse_is_saved_to_the_config_file_and_counted(browser, tmp_path) -> None:  # noqa: F811
    path = tmp_path / "cameras.yaml"
    path.write_text(CONFIG)
    service = Service(load_config(path, environ={}), path, lambda p: load_config(p, environ={}))
    await service.start()
    url = f"http://127.0.0.1:{service.bound_port}"
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url)
        await page.wait_for_selector("article[data-camera=demo][data-status=up]")
        await eventually(lambda: api_zones(url), lambda zones: zones and zones[0]["count"] is not None)
        await page.click("article[data-camera=demo] .edit-zones")
        await page.wait_for_selector("#zone-editor[open] img.editor-frame")
        await until_true(page, "document.querySelector('#zone-editor img.editor-frame').naturalWidth > 0")
        width, height = await page.evaluate(
            "(() => { const b = document.querySelector('#zone-editor svg').viewBox.baseVal; return [b.width, b.height]; })()"
        )
        corners = [
            (0.55 * width, 0.2 * height),
            (0.9 * width, 0.2 * height),
            (0.9 * width, 0.8 * height),
            (0.55 * width, 0.8 * height),
        ]
        await page.click("#zone-editor .editor-new")
        box = await page.locator("#zone-editor svg").bounding_box()
        on_screen = [
            (box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height) for x, y in corners
        ]
        for x, y in [*on_screen, on_screen[0]]:  # the last click, on the first corner, closes the polygon
            await page.mouse.click(x, y)
        row = "#zone-editor .editor-zones li.selected"
        await page.fill(f"{row} input[name=name]", "east side")
        await page.fill(f"{row} input[name=area]", "60")
        await page.fill(f"{row} input[name=limit]", "0.05")
        assert await page.text_content(f"{row} .limit-unit") == "people/m²"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.locator("#zone-editor").screenshot(path=ARTIFACTS / "zone-editor.png")
        await page.click("#zone-editor .editor-save")
        await page.wait_for_selector("#zone-editor .editor-message.ok")
        assert f"Saved to {path}" in await page.text_content("#zone-editor .editor-message")

        text = path.read_text()
        assert (
            "# the venue's cameras (this comment must survive the editor)" in text
            and "# drawn by hand" in text
        )
        assert (tmp_path / "cameras.yaml.bak").read_text() == CONFIG
        (old, east) = yaml.safe_load(text)["cameras"][0]["zones"]
        assert old == {"name": "old", "polygon": [[10, 10], [200, 10], [200, 200]]}
        assert (east["name"], east["area_m2"], east["threshold"]) == ("east side", 60, 0.05)
        tolerance = 2 * width / box["width"]  # one screen pixel, rounded, in frame pixels
        for (x, y), (ex, ey) in zip(east["polygon"], corners, strict=True):
            assert abs(x - ex) <= tolerance and abs(y - ey) <= tolerance, (east["polygon"], corners)

        zones = await eventually(
            lambda: api_zones(url), lambda zones: len(zones) == 2 and zones[1]["count"] is not None
        )
        assert zones[1]["name"] == "east side" and zones[1]["threshold"] == 0.05
        assert zones[1]["density"] == pytest.approx(zones[1]["count"] / 60, abs=1e-3)

        # drag the new zone 10 % of the frame to the left, delete the old one, save again
        middle = ((on_screen[0][0] + on_screen[2][0]) / 2, (on_screen[0][1] + on_screen[2][1]) / 2)
        await page.mouse.move(*middle)
        await page.mouse.down()
        await page.mouse.move(middle[0] - 0.1 * box["width"], middle[1], steps=5)
        await page.mouse.up()
        await page.click("#zone-editor .editor-zones li:first-child .delete")
        await page.click("#zone-editor .editor-save")
        await until_true(
            page, "document.querySelector('#zone-editor .editor-message').textContent.startsWith('Saved')"
        )
        (moved,) = yaml.safe_load(path.read_text())["cameras"][0]["zones"]
        assert moved["name"] == "east side"
        assert abs(moved["polygon"][0][0] - (east["polygon"][0][0] - 0.1 * width)) <= 2 * tolerance
        assert moved["polygon"][0][1] == east["polygon"][0][1]
        await eventually(lambda: api_zones(url), lambda zones: [z["name"] for z in zones] == ["east side"])
        assert errors == []
        await page.close()
    finally:
        await service.stop()
