"""The vocabulary data hands the math: a batch of chunked windows. Imports nothing of ours.

``data/`` produces :class:`ChunkBatch` es (``data/windows.py`` decides what a window means);
``losses.py`` and ``modules/`` consume them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ChunkBatch:
    """A batch of windows, batch-first, ready for the losses.

    observations: (B, O) state s_t.            next_observations: (B, O) state s_{t+h}.
    action_chunks: (B, h*A) actions t..t+h-1.  rewards: (B, h) with post-episode rewards zeroed.
    bootstrap_mask: (B,).  valid: (B,).        action_mask: (B, h*A).
    """

    observations: torch.Tensor
    action_chunks: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    bootstrap_mask: torch.Tensor
    valid: torch.Tensor
    action_mask: torch.Tensor

    def __len__(self) -> int:
        return self.observations.shape[0]
