"""The stream service: sources, batched inference, overlays, zones, publishing, live view and HTTP API.

Never imports `training` or torch: inference goes through `engines` (ONNX Runtime by default)."""
