"""`bench soak`: the whole service for minutes under faults (RTSP and Redis servers killed and restarted),
then every record read back and checked. The RTSP server and the process helpers here are also the
tests' (one home, so the soak and the suite fault the same real servers)."""
