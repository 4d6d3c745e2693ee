"""Where the data sets live: one way to name it, wherever data is read.

The data root is the folder that holds `shanghaitech/part_A|part_B/train_data` (and any other set a
command reads). It is never computed from where the package is installed: a wheel lives inside a venv,
and a guess there silently finds nothing. A user names it, first match wins:

1. a command's `--data-root DIR`;
2. the `CROWDSTREAM_DATA` environment variable;
3. `data_root:` in the configuration file (`crowdstream serve -c`, the fine-tune settings).

>>> import os; os.environ.pop(DATA_ROOT_ENV, None) and None
>>> resolve_data_root(None, None, required=False) is None
True
>>> str(resolve_data_root("/tmp"))
'/tmp'
"""

from __future__ import annotations

import os
from pathlib import Path

from crowdstream.engines.errors import CrowdstreamError

DATA_ROOT_ENV = "CROWDSTREAM_DATA"
"""The environment variable that names the data root when no `--data-root` is given."""
DATA_ROOT_HELP = f"data root holding shanghaitech/part_A|part_B/train_data (default: ${DATA_ROOT_ENV})"
"""The `--data-root` help text every command shares."""


class DataRootMissing(CrowdstreamError):
    """No data root was named, or the one named is not a folder."""


def resolve_data_root(
    option: str | Path | None = None, configured: str | Path | None = None, *, required: bool = True
) -> Path | None:
    """The data root named by `--data-root` (`option`), else `$CROWDSTREAM_DATA`, else the config's
    `data_root` (`configured`). With none named: None, or a one-line error naming all three when the
    command cannot run without data (`required`). A named folder that does not exist is always an error:
    a typo must not read as "no data"."""
    for value, source in (
        (option, "--data-root"),
        (os.environ.get(DATA_ROOT_ENV) or None, DATA_ROOT_ENV),
        (configured, "data_root in the config"),
    ):
        if value is None or value == "":
            continue
        root = Path(value).expanduser()
        if not root.is_dir():
            raise DataRootMissing(f"{root}: no such folder (the data root named by {source})")
        return root
    if required:
        raise DataRootMissing(
            f"no data root: name the folder holding shanghaitech/ with --data-root DIR, "
            f"the {DATA_ROOT_ENV} environment variable or data_root in the config"
        )
    return None
