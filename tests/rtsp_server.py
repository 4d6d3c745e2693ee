"""A real RTSP server on loopback for tests: GStreamer's gst-rtsp-server serving a live H.264 test pattern.

Two halves in one file. Run as a script with the *system* Python (Debian's python3-gi has the GStreamer
bindings; the venv has not) it is the server. Imported by tests, `RtspServer` starts that script in its own
process group and can kill and restart it on the same port, which is how tests simulate a camera dying and
coming back. Only the standard library is imported at module level so both halves load anywhere.

Debian packages: gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly (x264enc).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
MOUNT = "/live"


def pipeline(width: int, height: int, fps: int, pattern: str = "ball") -> str:
    """A live test pattern (videotestsrc's: a moving ball, smpte colour bars, ...) encoded for low
    latency, one key frame per second so clients start fast."""
    return (
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast "
        f"key-int-max={fps} ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def serve(port: int, width: int, height: int, fps: int, pattern: str) -> None:
    """Serve rtsp://127.0.0.1:PORT/live until SIGTERM (system Python with python3-gi only)."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(width, height, fps, pattern))
    factory.set_shared(True)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"rtsp_server: serving rtsp://127.0.0.1:{port}{MOUNT}", flush=True)
    loop.run()


class RtspServer:
    """The script above as a child process on a fixed port; `kill()` then `start()` simulates an outage."""

    def __init__(
        self,
        port: int,
        log_path: Path,
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
        pattern: str = "ball",
    ) -> None:
        self.port = port
        self.pattern = pattern
        self.log_path = log_path
        self.size = (width, height)
        self.fps = fps
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    @staticmethod
    def available() -> str | None:
        """None if the server can run here, else why not (for pytest.skip)."""
        if not shutil.which(SYSTEM_PYTHON):
            return f"{SYSTEM_PYTHON} is missing"
        probe = (
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
        )
        result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
        return None if result.returncode == 0 else "GStreamer RTSP server bindings are not installed"

    def start(self) -> None:
        from tests.conftest import wait_for_port  # pytest-only helper; the script half never gets here

        width, height = self.size
        command = [
            SYSTEM_PYTHON,
            __file__,
            "--port",
            str(self.port),
            "--width",
            str(width),
            "--height",
            str(height),
            "--fps",
            str(self.fps),
            "--pattern",
            self.pattern,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.port, timeout=20)

    def kill(self) -> None:
        """SIGKILL the whole process group: connections drop without an RTSP TEARDOWN, like a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the server: connections stay open but no data flows, like a hung camera."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        from tests.conftest import stop_process_group

        self.freeze(False)
        if self.process is not None:
            stop_process_group(self.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--pattern", default="ball", help="a videotestsrc pattern: ball, smpte, ...")
    args = parser.parse_args()
    serve(args.port, args.width, args.height, args.fps, args.pattern)


if __name__ == "__main__":
    main()
