"""Where the shared real data lives for tests (read in place, never copied into the repo)."""

from pathlib import Path

import pytest

DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "shanghaitech"
PART_A = DATA_ROOT / "part_A" / "train_data"
PART_B = DATA_ROOT / "part_B" / "train_data"

needs_data = pytest.mark.skipif(not PART_B.is_dir(), reason=f"ShanghaiTech data not found at {DATA_ROOT}")
