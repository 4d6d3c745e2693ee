"""Batches of planned training tiles made by a pool of threads.

Threads, not loader processes: a tile is planned in Python in microseconds (its pixels are made on the
training device, training.tile_render) and the previous loss's density targets are resized by OpenCV, which
releases the GIL; nothing is forked from a process that holds a CUDA context (forked loader processes hung
on the borrowed, gVisor-sandboxed H200 before delivering a batch). The order is a seeded
permutation per epoch, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from torch.utils.data import Dataset


def epoch_order(length: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample indices of one epoch."""
    return np.random.default_rng((seed, epoch)).permutation(length)


def iterate_batches(
    dataset: Dataset,
    order: np.ndarray,
    batch_size: int,
    collate: Callable[[list], dict],
    workers: int,
    prefetch: int = 4,
) -> Iterator[dict]:
    """Collated batches in `order`; with `workers` threads, up to `prefetch` batches are made ahead."""
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if workers == 0:
        for chunk in chunks:
            yield collate([dataset[int(i)] for i in chunk])
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="tiles") as pool:
        pending: deque[list[Future]] = deque()
        for chunk in chunks:
            pending.append([pool.submit(dataset.__getitem__, int(i)) for i in chunk])
            if len(pending) > prefetch:
                yield collate([future.result() for future in pending.popleft()])
        while pending:
            yield collate([future.result() for future in pending.popleft()])
