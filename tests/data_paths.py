"""Where the shared real data lives for tests (read in place, never copied into the repo)."""

import pytest

from crowdstream.engines.frames import DEFAULT_DATA_ROOT, shanghaitech_part

DATA_ROOT = DEFAULT_DATA_ROOT
PART_A = shanghaitech_part("A")
PART_B = shanghaitech_part("B")

needs_data = pytest.mark.skipif(not PART_B.is_dir(), reason=f"ShanghaiTech data not found at {PART_B}")
