"""What data hands the math: a batch of chunked windows (:class:`ChunkBatch`, made by ``data/windows.py``) and
the random draws of an update (:class:`Draws`). Plain tensor records that import nothing of ours."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ChunkBatch:
    """A batch of windows, batch-first, ready for the losses."""

    observations: torch.Tensor  # (B, O) state s_t
    action_chunks: torch.Tensor  # (B, h*A) actions t..t+h-1
    rewards: torch.Tensor  # (B, h) with post-episode rewards zeroed
    next_observations: torch.Tensor  # (B, O) state s_{t+h}
    bootstrap_mask: torch.Tensor  # (B,)
    valid: torch.Tensor  # (B,)
    action_mask: torch.Tensor  # (B, h*A)


@dataclass
class Draws:
    """Every random number of one update (docs/algorithm.md (U1)), batch-first, shared by all methods: the losses
    draw nothing, so a test can pin every number. ``D = h * A``."""

    next_noise: torch.Tensor  # (B, D) start noise at s' (the bootstrap)
    policy_noise: torch.Tensor  # (B, D) start noise at s
    depth: torch.Tensor  # (B,) RQL's reversal depths (A2')
    bc_noise: torch.Tensor  # (B, D) x0 of (A5)'s path
    bc_time: torch.Tensor  # (B, 1) t of (A5)'s path

    @classmethod
    def sample(
        cls,
        batch_size: int,
        chunk_dim: int,
        flow_steps: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> Draws:
        """Noises ``N(0, I)``, ``bc_time ~ U(0, 1)``; depths: half ``U(0, 1)``, half ``k / F`` with ``k ~ U{0..F}``."""
        kw = {"device": device, "generator": generator}
        n_uniform = batch_size // 2
        depth = torch.cat(
            [
                torch.rand(n_uniform, **kw),
                torch.randint(flow_steps + 1, (batch_size - n_uniform,), **kw).float() / flow_steps,
            ]
        )
        return cls(
            next_noise=torch.randn(batch_size, chunk_dim, **kw),
            policy_noise=torch.randn(batch_size, chunk_dim, **kw),
            depth=depth,
            bc_noise=torch.randn(batch_size, chunk_dim, **kw),
            bc_time=torch.rand(batch_size, 1, **kw),
        )


def stack_records(records: list) -> object:
    """``S`` records of one type (:class:`ChunkBatch`, :class:`Draws`) -> one whose fields are ``(S, ...)``: how a
    module with a replica axis (``seeds``) holds one batch and draws per replica."""
    fields = vars(records[0])
    return type(records[0])(**{k: torch.stack([vars(r)[k] for r in records]) for k in fields})
