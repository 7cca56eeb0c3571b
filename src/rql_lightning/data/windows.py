"""Transitions, windows and streams: the one place that decides what a window means (docs/algorithm.md (W1)-(W5)).
Batch ``k`` of rank ``r`` is a function of ``(seed, r, k)`` only, so a resumed run draws the uninterrupted one's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import InitVar, dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset

from rql_lightning.batch import ChunkBatch
from rql_lightning.data.dataset_checks import ACTION_CLIP_EPS
from rql_lightning.seeding import BATCH_STREAM, stream_seed


@dataclass
class OfflineArrays:
    """Per-transition arrays in OGBench's regular layout (float32, one row per transition): what every source
    produces; several tasks of one dataset share all but ``rewards`` and ``masks`` (a column per task)."""

    observations: np.ndarray  # (N, O)
    actions: np.ndarray  # (N, A)
    rewards: np.ndarray  # (N,), or (N, T): column c is task c's
    terminals: np.ndarray  # (N,) 1 on each episode's last transition
    masks: np.ndarray  # (N,) or (N, T): 0 where the task is completed

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def num_tasks(self) -> int:
        return 1 if self.rewards.ndim == 1 else int(self.rewards.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())

    def clip_and_sparsify(self, sparse: bool) -> None:
        """Every source's last step, in place: actions into [-1 + eps, 1 - eps] (the reference's convention); with
        ``sparse``, reward -1 on every step that is not a success, else 0."""
        np.clip(self.actions, -1 + ACTION_CLIP_EPS, 1 - ACTION_CLIP_EPS, out=self.actions)
        if sparse:
            self.rewards = -(self.rewards != 0).astype(np.float32)


def concat_arrays(parts: Sequence[OfflineArrays]) -> OfflineArrays:
    """Episodes of several files as one array set (each part closes its last episode)."""
    if len(parts) == 1:
        return parts[0]
    return OfflineArrays(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])})


def windows_to_batch(
    observations: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    masks: torch.Tensor,
) -> ChunkBatch:
    """``(B, h+1, ...)`` windows (steps past an episode's end repeat its last transition) -> a :class:`ChunkBatch`.
    Only the first and last observation are read, so ``(B, 2, O)`` observations are accepted too."""
    batch_size, window, action_dim = actions.shape
    h = window - 1
    # shifted[:, i] = terminals[:, i - 1], and 0 at i = 0: "has the window already ended?"
    shifted = torch.cat([torch.zeros_like(terminals[:, :1]), terminals[:, :-1]], dim=1)
    alive = 1.0 - shifted[:, :h]  # (B, h)
    return ChunkBatch(
        observations=observations[:, 0],
        action_chunks=actions[:, :h].reshape(batch_size, h * action_dim),
        rewards=rewards[:, :h] * alive,
        next_observations=observations[:, -1],
        bootstrap_mask=masks[:, h - 1],
        valid=(shifted.sum(dim=1) <= 1).to(rewards.dtype),
        action_mask=alive.repeat_interleave(action_dim, dim=1),
    )


@dataclass(eq=False, repr=False)
class WindowSampler:
    """Samples :class:`ChunkBatch` es from :class:`OfflineArrays` held as tensors (``s_{t+h}``: a later row)."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminals: torch.Tensor
    masks: torch.Tensor
    chunk_size: int
    open_tail: InitVar[bool] = False

    def __post_init__(self, open_tail: bool) -> None:
        ends = torch.nonzero(self.terminals > 0).squeeze(-1)
        starts = torch.cat([ends.new_zeros(1), ends[:-1] + 1])
        counts = ends - starts  # a finished episode's start steps: [start, end)
        if open_tail:
            # The rows after the last terminal are an episode still in progress (a replay buffer's). Its
            # windows are those whose h + 1 rows all exist, each the window the finished episode will give:
            # starts [first, n - 1 - h], the clamp at n - 1 never reached.
            n, first = self.terminals.shape[0], ends[-1:] + 1
            starts, ends = torch.cat([starts, first]), torch.cat([ends, torch.full_like(first, n - 1)])
            counts = torch.cat([counts, n - self.chunk_size - first])
        usable = counts > 0  # episodes with at least one start step
        self.episode_starts = starts[usable]
        self.episode_ends = ends[usable]
        self.episode_counts = counts[usable]
        self.offsets = torch.arange(self.chunk_size + 1, device=self.device)
        self._first_last = torch.tensor([0, self.chunk_size], device=self.device)

    @property
    def device(self) -> torch.device:
        return self.observations.device

    num_tasks = OfflineArrays.num_tasks  # the same rewards layout: (N,) or (N, T)

    def sample_indices(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, h+1)`` dataset indices: uniform episode, uniform start in ``[start, end)``, clamped."""
        dev = self.device
        episode = torch.randint(self.episode_starts.numel(), (batch_size,), device=dev, generator=generator)
        first, last = self.episode_starts[episode], self.episode_ends[episode]
        count = self.episode_counts[episode]  # end - start for a finished episode
        u = torch.rand(batch_size, device=dev, generator=generator)
        start = first + (u * count).long().clamp_max(count - 1)
        return torch.minimum(start.unsqueeze(1) + self.offsets, last.unsqueeze(1))

    def gather(self, idx: torch.Tensor, column: torch.Tensor | None = None) -> ChunkBatch:
        """The windows at ``idx (B, h+1)``; ``column (B,)``: each window's task column of ``(N, T)`` rewards and
        masks (None: column 0; ``(N,)`` ones are that one column)."""
        return windows_to_batch(
            self.observations[idx[:, self._first_last]],
            self.actions[idx],
            self._task_values(self.rewards, idx, column),
            self.terminals[idx],
            self._task_values(self.masks, idx, column),
        )

    @staticmethod
    def _task_values(values: torch.Tensor, idx: torch.Tensor, column: torch.Tensor | None) -> torch.Tensor:
        if values.ndim == 1:
            return values[idx]
        if column is None:
            return values[idx, 0]
        return values[idx, column.unsqueeze(1)]  # (B, h+1): rows idx[b] of column column[b]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> ChunkBatch:
        return self.gather(self.sample_indices(batch_size, generator))


def sampler_from_arrays(arrays: OfflineArrays, chunk_size: int, device: torch.device) -> WindowSampler:
    """A sampler over ``arrays``, moved to ``device`` once."""
    return WindowSampler(*(torch.from_numpy(a).to(device) for a in vars(arrays).values()), chunk_size)  # same order


class WindowStream(IterableDataset):
    """Endless batches from a :class:`WindowSampler`; batch ``k`` depends only on ``(seed, rank, k)``, whatever
    Lightning prefetched before a checkpoint. ``world_size > 1`` splits one global batch: every rank draws the same
    ``batch_size * world_size`` windows and keeps its slice."""

    #: ``(task column, seed)`` of each replica of a batched run (``modules/seeds.py``): batches are then
    #: ``(R, B, ...)``, replica ``(c, s)``'s rows this stream's batch with ``seed=s``, rewards from column ``c``.
    replicas: Sequence[tuple[int, int]] | None = None

    def __init__(
        self, sampler: WindowSampler, batch_size: int, seed: int, rank: int = 0, start: int = 0, world_size: int = 1
    ) -> None:
        self.sampler, self.batch_size = sampler, batch_size
        self.seed, self.rank, self.start, self.world_size = seed, rank, start, world_size
        self.generator = torch.Generator(device=sampler.device)

    def sampler_at(self, index: int) -> WindowSampler:
        """The sampler batch ``index`` is drawn from (a shard schedule or online buffer says by its ``sampler_at``)."""
        source_at = getattr(self.sampler, "sampler_at", None)
        return self.sampler if source_at is None else source_at(index)

    def batch(self, index: int) -> ChunkBatch:
        """Batch ``index``, ``(B, ...)``; with :attr:`replicas` ``(R, B, ...)``, indices drawn once per distinct seed
        (the tasks of a seed share them) and gathered once."""
        sampler, b = self.sampler_at(index), self.batch_size
        replicas = self.replicas if self.replicas is not None else [(0, self.seed)]
        columns = [c for c, _ in replicas]
        # A split global batch: every rank draws the whole batch as rank 0 does and keeps its own slice.
        rank, lo = (0, self.rank * b) if self.world_size > 1 else (self.rank, 0)
        drawn = {}
        for s in dict.fromkeys(s for _, s in replicas):
            self.generator.manual_seed(stream_seed(s, rank, index, BATCH_STREAM))
            drawn[s] = sampler.sample_indices(b * self.world_size, self.generator)[lo : lo + b]
        if self.replicas is None:
            return sampler.gather(drawn[self.seed])
        idx = torch.cat([drawn[s] for _, s in replicas])  # (R * B, h+1)
        flat = sampler.gather(idx, self._window_columns(columns, b, idx.device) if sampler.num_tasks > 1 else None)
        return ChunkBatch(**{k: v.reshape(len(columns), b, *v.shape[1:]) for k, v in vars(flat).items()})

    def _window_columns(self, columns: list[int], b: int, device: torch.device) -> torch.Tensor:
        """``(R * B,)`` task column of each window of a replica batch, made once (not a copy to the device a step)."""
        key = (tuple(columns), b, device)
        if getattr(self, "_columns", (None,))[0] != key:
            self._columns = (key, torch.tensor(columns, device=device).repeat_interleave(b))
        return self._columns[1]

    def __iter__(self) -> Iterator[ChunkBatch]:
        index = self.start
        while True:
            yield self.batch(index)
            index += 1
