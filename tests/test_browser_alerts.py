"""Alerts in Debian's Chromium: the page lists the alert history from /api/alerts and adds an alert
the moment a zone crosses its limit (over the event stream), with its start, peak and units, and moves
it to the ended list when the zone is back under its limit."""

from __future__ import annotations

import aiohttp

from tests.conftest import ARTIFACTS, eventually
from tests.web_support import get_json, serve


async def alert_rows(page) -> list[dict]:
    return await page.eval_on_selector_all(
        "#alerts li",
        "items => items.map(li => ({id: li.dataset.id, ongoing: li.classList.contains('ongoing'), "
        "text: li.textContent}))",
    )


async def test_an_alert_appears_in_the_list_when_a_zone_crosses_its_limit(browser) -> None:  # noqa: F811
    async with serve() as served, aiohttp.ClientSession() as session:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await page.goto(served.url)
        await page.wait_for_selector("article.camera[data-camera=hall]")
        # gate's zone (1 person) has been over its limit from the first count; the hall's is not
        rows = await eventually(lambda: alert_rows(page), lambda rows: len(rows) == 1)
        assert rows[0]["ongoing"] and rows[0]["text"].startswith("Gate · left half")
        assert await page.text_content("#ongoing") == "1 alert ongoing"

        served.worker.tasks["hall"].zones[0].threshold = 0.5  # the hall's zone now crosses its limit
        rows = await eventually(lambda: alert_rows(page), lambda rows: len(rows) == 2)
        _, body = await get_json(session, f"{served.url}/api/alerts?camera=hall")
        (alert,) = body["alerts"]
        assert rows[0]["id"] == alert["id"] and rows[0]["ongoing"]
        text = rows[0]["text"]
        assert text.startswith("Hall · left half") and "ongoing for" in text
        assert "peak " in text and "limit 0.5 people" in text
        await eventually(lambda: page.text_content("#ongoing"), lambda text: text == "2 alerts ongoing")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "alerts.png", full_page=True)

        served.worker.tasks["hall"].zones[0].threshold = 10_000.0  # back under: ends after 1 s
        rows = await eventually(lambda: alert_rows(page), lambda rows: not rows[0]["ongoing"], timeout=20)
        assert " – " in rows[0]["text"] and rows[0]["id"] == alert["id"]
        assert await page.text_content("#ongoing") == "1 alert ongoing"
        await page.close()
