"""The arrays every source produces: one row per transition, in OGBench's regular layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class OfflineArrays:
    """Per-transition arrays in OGBench's regular layout (float32, one row per transition)."""

    observations: np.ndarray  # (N, O)
    actions: np.ndarray  # (N, A)
    rewards: np.ndarray  # (N,)
    terminals: np.ndarray  # (N,) 1 on each episode's last transition
    masks: np.ndarray  # (N,) 0 where the task is completed

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())


def concat_arrays(parts: Sequence[OfflineArrays]) -> OfflineArrays:
    """Episodes of several files as one array set (each part closes its last episode)."""
    if len(parts) == 1:
        return parts[0]
    return OfflineArrays(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])})
