"""Where the shared real data lives for tests (read in place, never copied into the repo).

The tests run only in a checkout, so they may fall back on where the project machines mount the data,
`<checkout>/../shared/data`; the product itself never guesses (engines.data_root). `$CROWDSTREAM_DATA`
names another place, and CLI tests pass DATA_ROOT on with `--data-root`.
"""

import os
from pathlib import Path

import pytest

from crowdstream.engines.data_root import DATA_ROOT_ENV
from crowdstream.engines.frames import shanghaitech_part

CHECKOUT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get(DATA_ROOT_ENV) or CHECKOUT.parent / "shared" / "data")
PART_A = shanghaitech_part("A", DATA_ROOT)
PART_B = shanghaitech_part("B", DATA_ROOT)

needs_data = pytest.mark.skipif(not PART_B.is_dir(), reason=f"ShanghaiTech data not found at {PART_B}")
