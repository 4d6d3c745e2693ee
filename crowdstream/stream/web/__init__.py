"""HTTP API, WebRTC live view and the dashboard page (aiohttp + aiortc)."""
