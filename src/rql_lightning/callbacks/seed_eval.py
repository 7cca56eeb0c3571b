"""Evaluation of a seed-batched module: ``S`` runs' episodes in one vector env, one policy call per round.

Module contract
    ``module.seeds`` (the run seeds, e.g. :class:`~rql_lightning.modules.seeds.SeedBatch`), ``module.chunk_size``
    and ``module.act_seeds(obs (S, M, O), noise_seeds (S, M), generator) -> (S, M, h, A)``: row ``m`` of seed
    ``i`` is what the single run ``seed=seeds[i]`` gives through ``act_seeded`` for the noise seed
    ``noise_seeds[i, m]`` (``-1`` marks a padding row, whose output is ignored).

Episodes
    Seed ``i``'s episode ``k`` is the combined episode ``i * N + k`` (``N`` counted episodes per seed), its
    video episode ``v`` the combined ``S * N + i * V + v``.  Each is reset with the seed its single run gives
    it (``seeds[i] + k``; ``seeds[i] + N + v`` for a video) and draws the noise of its chunk ``c`` from
    ``stream_seed(seeds[i], k, c, EVAL_NOISE_STREAM)``, so every seed gets exactly the episodes and noise of
    its own run.  The rollout (:func:`~rql_lightning.envs.evaluate_policy`) schedules, shards over DDP ranks
    and counts the ``S * N`` combined episodes as it does one run's; :func:`split_by_seed` maps the (gathered)
    result back to one :class:`~rql_lightning.envs.EvalResult` per seed.  The rollout resets combined episode
    ``j`` with :meth:`SeedLayout.env_seed` (its ``episode_seed``), the seed its own run gives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rql_lightning.callbacks.protocol import (
    EVAL_NOISE_STREAM,
    chunk_size_of,
    noise_generator,
    policy_mode,
    render_kwargs,
)
from rql_lightning.envs import EvalEnvs, EvalResult, evaluate_policy
from rql_lightning.seeding import stream_seed

__all__ = ["SeedLayout", "evaluate_seeds", "split_by_seed"]


@dataclass(frozen=True)
class SeedLayout:
    """Where each seed's episodes sit among the combined ones (module docstring)."""

    seeds: tuple[int, ...]
    num_episodes: int  # counted episodes per seed
    video_episodes: int = 0  # extra rendered episodes per seed

    @property
    def counted(self) -> int:
        return len(self.seeds) * self.num_episodes

    def split(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Combined episode ids -> (seed index, the episode's id in its own run)."""
        ids = np.asarray(ids, dtype=np.int64)
        video = ids >= self.counted
        n, v = self.num_episodes, max(self.video_episodes, 1)
        index = np.where(video, (ids - self.counted) // v, ids // n)
        own = np.where(video, n + (ids - self.counted) % v, ids % n)
        return index, own

    def env_seed(self, combined: int) -> int:
        """The reset seed of a combined episode: ``seed + id`` of its own run."""
        index, own = self.split(np.array([combined]))
        return self.seeds[int(index[0])] + int(own[0])


class SeedBatchPolicy:
    """The rollout's policy ``(obs, combined ids, chunk indices) -> chunks``: the round's rows grouped by seed
    (padded to a power of two >= the largest group) through one ``module.act_seeds`` call."""

    def __init__(self, module: nn.Module, layout: SeedLayout, generator: torch.Generator) -> None:
        self.module, self.layout, self.generator = module, layout, generator

    def __call__(self, obs: np.ndarray, episodes: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        index, own = self.layout.split(episodes)
        counts = np.bincount(index, minlength=len(self.layout.seeds))
        slot = np.zeros(len(index), dtype=np.int64)
        for i in range(len(counts)):
            slot[index == i] = np.arange(counts[i])
        rows = 1 << int(counts.max() - 1).bit_length()  # a power of two: few shapes for a compiled policy
        grid = np.zeros((len(counts), rows, *obs.shape[1:]), dtype=obs.dtype)
        noise_seeds = np.full(grid.shape[:2], -1, dtype=np.int64)
        grid[index, slot] = obs
        for r in range(len(index)):
            seed = self.layout.seeds[index[r]]
            noise_seeds[index[r], slot[r]] = stream_seed(seed, int(own[r]), int(chunks[r]), EVAL_NOISE_STREAM)
        out = self.module.act_seeds(grid, noise_seeds, self.generator)
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        return out[index, slot]


def evaluate_seeds(
    module: nn.Module,
    env_name: str,
    *,
    num_episodes: int,
    num_envs: int = 1,
    seed: int | None = None,
    video_episodes: int = 0,
    frame_skip: int = 3,
    width: int = 128,
    height: int = 128,
    render_episodes: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    episode_noise: bool = True,
    rank: int = 0,
    world_size: int = 1,
    envs: EvalEnvs | None = None,
    generator: torch.Generator | None = None,
) -> EvalResult:
    """:func:`~rql_lightning.callbacks.protocol.evaluate_module` for a seed-batched module: this rank's share of
    every seed's combined episodes (``num_episodes`` and ``video_episodes`` per seed, ``num_envs`` envs per
    seed; ``seed`` is unused: each seed is its own run's); :func:`split_by_seed` of the (gathered) result gives
    each seed's."""
    if not episode_noise:
        raise ValueError("a seed-batched module is evaluated with episode_noise=True (each seed's own noise)")
    layout = SeedLayout(tuple(int(s) for s in module.seeds), int(num_episodes), int(video_episodes))
    kwargs = render_kwargs(env_kwargs, bool(video_episodes or render_episodes), width, height)
    generator = generator if generator is not None else noise_generator(torch.device("cpu"))
    with policy_mode(module):
        return evaluate_policy(
            SeedBatchPolicy(module, layout, generator),
            env_name,
            num_episodes=layout.counted,
            num_envs=num_envs * len(layout.seeds),
            seed=0,
            chunk_size=chunk_size_of(module),
            render_episodes=render_episodes,
            env_kwargs=kwargs,
            rank=rank,
            world_size=world_size,
            video_episodes=len(layout.seeds) * layout.video_episodes,
            frame_skip=frame_skip if video_episodes else 1,
            episode_info=True,
            envs=envs,
            episode_seed=layout.env_seed,  # each combined episode reset as its own run resets it
        )


def split_by_seed(result: EvalResult, layout: SeedLayout, frame_ids: np.ndarray | None = None) -> dict[int, EvalResult]:
    """One result per seed, in the ids of its own run; ``frame_ids``: the combined ids of ``result.frames``."""
    index, own = layout.split(result.episode_ids)
    frame_index = layout.split(frame_ids)[0] if frame_ids is not None else np.zeros(len(result.frames), int)
    v = layout.video_episodes
    out = {}
    for i, seed in enumerate(layout.seeds):
        mine = index == i
        out[seed] = EvalResult.from_episodes(
            own[mine],
            result.episode_successes[mine],
            result.episode_returns[mine],
            result.episode_lengths[mine],
            frames=[f for f, j in zip(result.frames, frame_index, strict=True) if j == i],
            videos=result.videos[i * v : (i + 1) * v],
            wall_time_s=result.wall_time_s,  # the one batched evaluation's
        )
    return out
