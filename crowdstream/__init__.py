"""crowdstream: real-time crowd counting for video streams."""

__version__ = "0.1.0"
