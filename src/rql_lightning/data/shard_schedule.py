"""Which group of shards serves batch ``k``: ``(k // swap_interval) % num_groups``, so resumed and DDP runs draw the
same batches. The next group loads in a thread (at most two alive); one not ready in time is a stall: ``wait``
blocks (exact schedule), ``continue`` keeps the current group. A jump to a group not prefetched is a ``cold_load``.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from rql_lightning.data.windows import WindowSampler

log = logging.getLogger("rql_lightning")


@dataclass(eq=False, repr=False)
class ShardCycler:
    """Which shard group serves batch ``k``, and the background loads (``load_group``) that keep the next one ready."""

    shards: Sequence[Path]
    load_group: Callable[[Sequence[Path]], WindowSampler]
    swap_interval: int = 1000
    shards_in_memory: int = 1
    on_stall: str = "wait"

    def __post_init__(self) -> None:  # the settings: checked by the config schema (checks.py), shards by the caller
        m = self.shards_in_memory
        self.groups = [self.shards[i : i + m] for i in range(0, len(self.shards), m)]
        self.active: WindowSampler | None = None
        self.active_group: int | None = None
        self._pending: Future | None = None
        self._pending_group: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._alive: weakref.WeakSet = weakref.WeakSet()
        # Counters (read by tests, benchmarks and anyone watching for a slow disk).
        self.loads = 0
        self.cold_loads = 0
        self.stalls = 0
        self.stall_seconds = 0.0
        self.visited: list[int] = []  # groups in the order they became active

    def __getstate__(self) -> dict:
        """Picklable (``ddp_spawn`` sends the datamodule to its workers): no thread, no load in flight."""
        return {**self.__dict__, "_executor": None, "_pending": None, "_pending_group": None, "_alive": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._alive = weakref.WeakSet([self.active] if self.active is not None else [])

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    @property
    def device(self) -> torch.device:
        return (self.active if self.active is not None else self.warm(0)).device

    @property
    def resident(self) -> int:
        """Samplers alive (active + loading + any reference held elsewhere): the memory bound is 2 groups."""
        return len(self._alive)

    def group_of(self, step: int) -> int:
        return (step // self.swap_interval) % self.num_groups

    def _load(self, group: int) -> WindowSampler:
        sampler = self.load_group(self.groups[group])
        self.loads += 1
        self._alive.add(sampler)
        return sampler

    def _drain_pending(self) -> WindowSampler | None:
        """Result of the in-flight load (waiting for it); None if there is none."""
        pending, self._pending, self._pending_group = self._pending, None, None
        return pending.result() if pending is not None else None

    def warm(self, step: int) -> WindowSampler:
        """Make the group of ``step`` active now, synchronously, without starting a prefetch."""
        group = self.group_of(step)
        if self.active_group != group:
            if self._pending_group == group:
                sampler = self._drain_pending()
            else:
                self._drain_pending()  # never two loads at once (memory bound, one env)
                self.active = None  # drop the old group before loading the new one
                sampler = self._load(group)
                if self.visited:
                    self.cold_loads += 1
            self.active, self.active_group = sampler, group  # one assignment: the swap
            self.visited.append(group)
        return self.active

    def sampler_at(self, step: int) -> WindowSampler:
        """The sampler for batch ``step``; swaps to the next group when its interval starts."""
        group = self.group_of(step)
        if group != self.active_group:
            if self.active is not None and self._pending_group == group and not self._pending.done():
                self.stalls += 1
                if self.on_stall == "continue":
                    if self.stalls == 1 or self.stalls % 100 == 0:
                        log.warning(
                            "shard group %d not loaded by step %d: still sampling group %d (%d stalled steps so "
                            "far; the disk is slower than data.shard_swap_interval steps)",
                            group,
                            step,
                            self.active_group,
                            self.stalls,
                        )
                    return self.active
                t0 = time.perf_counter()
                self._pending.exception()  # wait
                waited = time.perf_counter() - t0
                self.stall_seconds += waited
                log.warning("waited %.2fs for shard group %d at step %d (stall %d)", waited, group, step, self.stalls)
            self.warm(step)
        nxt = (group + 1) % self.num_groups
        if self._pending_group is None and nxt != self.active_group:  # prefetch the next group
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rql-shard-loader")
            self._pending_group, self._pending = nxt, self._executor.submit(self._load, nxt)
        return self.active

    def close(self) -> None:
        """Stop the loader thread (waiting for a load in flight); a later :meth:`sampler_at` restarts it."""
        self._pending = self._pending_group = None  # a load not started yet is cancelled by the shutdown
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
