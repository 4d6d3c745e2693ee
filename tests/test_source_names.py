"""Cameras given with `serve --source` are named: by `--name` in the same position, else from the URL."""

import pytest

from crowdstream.engines.errors import ConfigError
from crowdstream.stream.config import cameras_from_urls, load_config


def test_sources_are_named_from_their_urls_and_made_unique() -> None:
    urls = [
        "rtsp://admin:pw@10.0.0.7:554/s1",
        "rtsp://10.0.0.7/s2",
        "/videos/Front door.mp4",
        "demo",
        "/dev/video0",
    ]
    cameras = cameras_from_urls(urls)
    assert [c["name"] for c in cameras] == ["10.0.0.7", "10.0.0.7-2", "Front door", "demo", "video0"]
    assert [c["id"] for c in cameras] == ["10.0.0.7", "10.0.0.7-2", "Front-door", "demo", "video0"]
    assert [c["url"] for c in cameras] == urls
    config = load_config(None, environ={}, overrides={"cameras": cameras})
    assert [c.display_name for c in config.cameras] == [c["name"] for c in cameras]


def test_names_pair_with_sources_in_order() -> None:
    cameras = cameras_from_urls(["rtsp://a/1", "rtsp://b/1", "clip.mp4"], ["Main gate", "Main gate"])
    assert [(c["id"], c["name"]) for c in cameras] == [
        ("Main-gate", "Main gate"),
        ("Main-gate-2", "Main gate"),  # the ids key Redis and the metrics, so they stay unique
        ("clip", "clip"),
    ]


@pytest.mark.parametrize("urls", [["rtsp://a/1"], []])
def test_more_names_than_sources_is_a_mistake(urls: list[str]) -> None:
    with pytest.raises(ConfigError, match=f"--name: 2 names for {len(urls)} --source URLs"):
        cameras_from_urls(urls, ["one", "two"])
