"""The stream's batch size changes with every call: ONNX Runtime must not grow memory per new shape."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import numpy as np
from engines.engine import load_engine

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

engine = load_engine("default", "onnxruntime", 1)
tiles = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)
engine.infer(tiles)  # the largest batch first: the arena reaches its size
before = rss_mb()
for size in range(1, 17):
    engine.infer(tiles[:size])
print(rss_mb() - before)
"""


def test_every_batch_size_after_the_largest_fits_in_the_same_memory() -> None:
    # a fresh interpreter, so nothing else in the test session moves its RSS
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    growth_mb = float(probe.stdout.strip().splitlines()[-1])
    assert growth_mb < 15, (
        f"RSS grew {growth_mb:.0f} MB over 16 batch sizes (a memory pattern cached per shape?)"
    )
