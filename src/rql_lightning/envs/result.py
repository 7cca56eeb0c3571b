"""``EvalResult``: the outcome of one evaluation, per episode and in summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EvalResult"]


@dataclass
class EvalResult:
    """Outcome of an evaluation; per-episode arrays are ordered by episode index.

    ``success_rate``/``mean_return`` are NaN when the result holds no episode (a rank with no share).
    """

    success_rate: float
    mean_return: float
    num_episodes: int
    episode_successes: np.ndarray  # (E,) bool
    episode_returns: np.ndarray  # (E,) float64
    episode_lengths: np.ndarray  # (E,) int64
    # (T', H, W, 3) uint8 per recorded counted episode: the frame after the reset, then see ``frame_skip``
    frames: list[np.ndarray] = field(default_factory=list)
    wall_time_s: float = 0.0
    # (E,) int64: global index of each episode (seeded seed + index); None means arange(E)
    episode_ids: np.ndarray | None = None
    # frames of the extra video episodes (not counted in any statistic), in episode order
    videos: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.episode_ids is None:
            self.episode_ids = np.arange(self.num_episodes, dtype=np.int64)

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.episode_lengths)) if self.num_episodes else float("nan")

    def summary(self) -> str:
        return (
            f"success_rate={self.success_rate:.3f} return={self.mean_return:.2f} "
            f"length={self.mean_length:.1f} episodes={self.num_episodes} ({self.wall_time_s:.1f}s)"
        )

    @classmethod
    def from_episodes(
        cls,
        episode_ids: np.ndarray,
        successes: np.ndarray,
        returns: np.ndarray,
        lengths: np.ndarray,
        **extra: Any,
    ) -> EvalResult:
        """Build a result from per-episode arrays (any order; sorted by episode id here)."""
        order = np.argsort(np.asarray(episode_ids), kind="stable")
        ids = np.asarray(episode_ids, dtype=np.int64)[order]
        succ = np.asarray(successes, dtype=bool)[order]
        ret = np.asarray(returns, dtype=np.float64)[order]
        n = len(ids)
        return cls(
            success_rate=float(succ.mean()) if n else float("nan"),
            mean_return=float(ret.mean()) if n else float("nan"),
            num_episodes=n,
            episode_successes=succ,
            episode_returns=ret,
            episode_lengths=np.asarray(lengths, dtype=np.int64)[order],
            episode_ids=ids,
            **extra,
        )
