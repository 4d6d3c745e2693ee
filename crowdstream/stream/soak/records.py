"""Reading every count record back from Redis and checking it: each one parses, and per camera the
`seq` numbers of this run are exactly 1..N (N: how many the publisher was given), once each, in order.

`check_sequence` is the pure part: it turns the `seq` numbers in Stream order into missing, duplicated
and out-of-order counts, so "0 lost" means every number the publisher handed out is in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis

from crowdstream.stream.redis_publisher import counts_key

READ_CHUNK = 5000
SHOWN = 10
"""How many missing or repeated numbers a report lists (the counts are always complete)."""
NUMBERS = ("timestamp", "count", "smoothed", "frame_age")


@dataclass(frozen=True)
class SequenceCheck:
    """What one camera's records say against the numbers 1..`expected` its publisher handed out."""

    expected: int
    records: int
    missing: int
    duplicated: int
    out_of_order: int  # records whose seq is below the one before them
    unexpected: int  # seq outside 1..expected
    first_missing: list[int] = field(default_factory=list)
    first_duplicated: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.duplicated or self.out_of_order or self.unexpected)


def check_sequence(seqs: Sequence[int], expected: int) -> SequenceCheck:
    """Compare the `seq` numbers found (in Stream order) with 1..`expected`."""
    seen: set[int] = set()
    repeated: list[int] = []
    for seq in seqs:
        if seq in seen:
            repeated.append(seq)
        seen.add(seq)
    wanted = range(1, expected + 1)
    missing = [seq for seq in wanted if seq not in seen]
    return SequenceCheck(
        expected=expected,
        records=len(seqs),
        missing=len(missing),
        duplicated=len(repeated),
        out_of_order=sum(later < earlier for earlier, later in zip(seqs, seqs[1:], strict=False)),
        unexpected=sum(not 1 <= seq <= expected for seq in seen),
        first_missing=missing[:SHOWN],
        first_duplicated=sorted(set(repeated))[:SHOWN],
    )


def parse_record(fields: dict[bytes, bytes]) -> tuple[str, int]:
    """(run, seq) of a Stream entry, after checking every field a consumer reads parses; ValueError if
    one does not (or is missing)."""
    try:
        text = {key.decode(): value.decode() for key, value in fields.items()}
        for name in NUMBERS:
            float(text[name])
        zones = json.loads(text["zones"])
        if not isinstance(zones, list):
            raise ValueError("zones is not a list")
        return text["run"], int(text["seq"])
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable record: {exc!r}") from None


@dataclass(frozen=True)
class CameraRecords:
    """One camera's Stream, read back: the seq numbers of `run` in Stream order and what did not fit."""

    seqs: list[int]
    unparsable: int
    other_runs: int


async def read_camera(
    client: aioredis.Redis, prefix: str, camera: str, run: str, chunk: int = READ_CHUNK
) -> CameraRecords:
    """Every entry of a camera's Stream, oldest first, `chunk` at a time."""
    seqs: list[int] = []
    unparsable = other_runs = 0
    start = "-"
    while entries := await client.xrange(counts_key(prefix, camera), min=start, count=chunk):
        for _entry_id, fields in entries:
            try:
                entry_run, seq = parse_record(fields)
            except ValueError:
                unparsable += 1
                continue
            if entry_run == run:
                seqs.append(seq)
            else:
                other_runs += 1
        start = f"({entries[-1][0].decode()}"
    return CameraRecords(seqs, unparsable, other_runs)


async def check_records(
    url: str, prefix: str, run: str, published: dict[str, int], chunk: int = READ_CHUNK
) -> dict[str, dict]:
    """Read back every camera's records and check them against how many were published (camera → N)."""
    client = aioredis.Redis.from_url(url)
    try:
        report = {}
        for camera, expected in published.items():
            found = await read_camera(client, prefix, camera, run, chunk)
            check = check_sequence(found.seqs, expected)
            report[camera] = {
                **asdict(check),
                "unparsable": found.unparsable,
                "other_runs": found.other_runs,
            }
        return report
    finally:
        await client.aclose()
