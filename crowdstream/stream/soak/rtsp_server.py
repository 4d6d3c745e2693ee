"""A real RTSP server on loopback: GStreamer's gst-rtsp-server serving a live H.264 test pattern, or an
H.264 MP4 file (the soak serves the demo clip, each client its own copy from the start, in real time).

Two halves in one file. Run as a script with the *system* Python (Debian's python3-gi has the GStreamer
bindings; the venv has not) it is the server. Imported by the soak and the tests, `RtspServer` starts
that script in its own process group and can kill and restart it on the same port, which is how a camera
dying and coming back is simulated. Only the standard library is imported at module level so both
halves load anywhere.

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


def file_pipeline(path: str) -> str:
    """An H.264 MP4 file sent as it is (no decoding or encoding), paced by the server's clock."""
    return f"( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"


def serve(port: int, launch: str, shared: bool) -> None:
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
    factory.set_launch(launch)
    factory.set_shared(shared)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"rtsp_server: serving rtsp://127.0.0.1:{port}{MOUNT}", flush=True)
    loop.run()


class RtspServer:
    """The script above as a child process on a fixed port; `kill()` then `start()` simulates an outage.
    With `clip` (an H.264 MP4) it serves that file, every client from its start; else the test pattern."""

    def __init__(
        self,
        port: int,
        log_path: Path,
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
        pattern: str = "ball",
        clip: Path | None = None,
    ) -> None:
        self.port = port
        self.pattern = pattern
        self.log_path = log_path
        self.size = (width, height)
        self.fps = fps
        self.clip = clip
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    @staticmethod
    def available() -> str | None:
        """None if the server can run here, else why not."""
        if not shutil.which(SYSTEM_PYTHON):
            return f"{SYSTEM_PYTHON} is missing"
        probe = (
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
        )
        result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
        return None if result.returncode == 0 else "GStreamer RTSP server bindings are not installed"

    def start(self) -> None:
        from crowdstream.stream.soak.processes import wait_for_port  # the script half never gets here

        width, height = self.size
        source = ["--clip", str(self.clip)] if self.clip else ["--pattern", self.pattern]
        size = ["--width", str(width), "--height", str(height), "--fps", str(self.fps)]
        command = [SYSTEM_PYTHON, __file__, "--port", str(self.port), *size, *source]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.port, timeout=20)

    def kill(self) -> None:
        """SIGKILL the whole process group: connections drop without an RTSP TEARDOWN, like a crash."""
        from crowdstream.stream.soak.processes import kill_process_group

        kill_process_group(self.process)

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the server: connections stay open but no data flows, like a hung camera."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        from crowdstream.stream.soak.processes import stop_process_group

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
    parser.add_argument("--clip", help="serve this H.264 MP4 file instead of a test pattern")
    args = parser.parse_args()
    if args.clip:
        serve(args.port, file_pipeline(args.clip), shared=False)
    else:
        serve(args.port, pipeline(args.width, args.height, args.fps, args.pattern), shared=True)


if __name__ == "__main__":
    main()
