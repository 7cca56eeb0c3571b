"""One evaluation's episodes from every DDP rank, with ``LightningModule.all_gather``."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch

from rql_lightning.envs import EvalResult

__all__ = ["gather_episodes"]


def gather_episodes(pl_module: L.LightningModule, local: EvalResult, num_episodes: int, world_size: int) -> EvalResult:
    """All ranks' episodes of one evaluation (a collective: call on every rank); frames stay local.

    Ranks hold ``ceil`` or ``floor(num_episodes / world_size)`` episodes; each sends a table padded to the
    larger count (padding rows have episode id -1), ``all_gather`` stacks them, and the wall time is the
    slowest rank's.  Float64 holds ids, lengths and OGBench returns exactly (float32 on MPS, which has no
    float64).
    """
    dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
    rows = math.ceil(num_episodes / world_size)
    table = np.full((rows, 4), -1.0)
    n = local.num_episodes
    table[:n] = np.stack([local.episode_ids, local.episode_successes, local.episode_returns, local.episode_lengths], 1)
    gathered = pl_module.all_gather(torch.as_tensor(table, dtype=dtype)).reshape(-1, 4).cpu().numpy()
    wall = pl_module.all_gather(torch.tensor(local.wall_time_s, dtype=dtype))
    gathered = gathered[gathered[:, 0] >= 0]
    ids = gathered[:, 0].astype(np.int64)
    if sorted(ids.tolist()) != list(range(num_episodes)):
        raise RuntimeError(f"evaluation gathered episodes {sorted(ids.tolist())}, expected 0..{num_episodes - 1}")
    return EvalResult.from_episodes(
        ids,
        gathered[:, 1] > 0.5,
        gathered[:, 2],
        gathered[:, 3].astype(np.int64),
        frames=local.frames,
        videos=local.videos,
        wall_time_s=float(wall.max()),
    )
