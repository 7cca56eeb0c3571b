"""The ``(h + 1)``-step window sampler and the window semantics RQL trains on.

This module is the one place that decides what a window means:

* a window starts at a uniform step ``t`` of a uniform episode (episodes with at least one
  transition) and holds steps ``t .. t + h``, indices clamped to the episode's last step;
* reward ``r_{t+i}`` (``i >= 1``) is zeroed when ``terminals[t+i-1]`` is set, i.e. once the
  window has run past its episode's end;
* ``valid`` is 1 iff at most one of ``terminals[t .. t+h-1]`` is set;
* ``bootstrap_mask`` is the dataset's ``masks`` at step ``t + h - 1``;
* ``action_mask`` zeroes the action dims of chunk step ``k >= 1`` when ``terminals[t+k-1]`` is set.

Sampling is a handful of gathers on whatever device the arrays live on: no Python loop
over the batch.
"""

from __future__ import annotations

import torch

from rql_lightning.batch import ChunkBatch


def windows_to_batch(
    observations: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    masks: torch.Tensor,
) -> ChunkBatch:
    """Turn raw windows into a :class:`ChunkBatch`.

    Inputs are batch-first over ``h + 1`` window steps: ``observations (B, h+1, O)``,
    ``actions (B, h+1, A)``, ``rewards``/``terminals``/``masks (B, h+1)``; steps past an
    episode's end repeat its last transition (terminal set), as the sampler produces them.
    Only the first and last observation are read, so ``(B, 2, O)`` is accepted too.
    """
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


class WindowSampler:
    """Samples :class:`ChunkBatch` es from flat per-transition arrays held as tensors.

    Arrays follow OGBench's regular layout: one row per transition, ``terminals`` set on the
    last transition of every episode. Observations are stored once; ``s_{t+h}`` is gathered
    from the same array.
    """

    def __init__(
        self,
        observations: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        terminals: torch.Tensor,
        masks: torch.Tensor,
        chunk_size: int,
    ) -> None:
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.masks = masks
        self.chunk_size = chunk_size
        ends = torch.nonzero(terminals > 0).squeeze(-1)
        starts = torch.cat([ends.new_zeros(1), ends[:-1] + 1])
        usable = ends > starts  # episodes with at least one start step before their end
        self.episode_starts = starts[usable]
        self.episode_ends = ends[usable]
        self.offsets = torch.arange(chunk_size + 1, device=observations.device)
        self._first_last = torch.tensor([0, chunk_size], device=observations.device)

    @property
    def device(self) -> torch.device:
        return self.observations.device

    @property
    def num_episodes(self) -> int:
        return int(self.episode_starts.numel())

    def sample_indices(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, h+1)`` dataset indices: uniform episode, uniform start in ``[start, end)``, clamped."""
        dev = self.device
        episode = torch.randint(self.num_episodes, (batch_size,), device=dev, generator=generator)
        first, last = self.episode_starts[episode], self.episode_ends[episode]
        u = torch.rand(batch_size, device=dev, generator=generator)
        start = first + (u * (last - first)).long().clamp_max(last - first - 1)
        return torch.minimum(start.unsqueeze(1) + self.offsets, last.unsqueeze(1))

    def gather(self, idx: torch.Tensor) -> ChunkBatch:
        return windows_to_batch(
            self.observations[idx[:, self._first_last]],
            self.actions[idx],
            self.rewards[idx],
            self.terminals[idx],
            self.masks[idx],
        )

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> ChunkBatch:
        return self.gather(self.sample_indices(batch_size, generator))
