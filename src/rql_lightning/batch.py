"""What data hands the math: a batch of chunked windows (:class:`ChunkBatch`, made by ``data/windows.py``) and
the random draws of an update (:class:`Draws`). Plain tensor records that import nothing of ours."""

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


@dataclass
class Draws:
    """Every random number of one update (docs/algorithm.md (U1)), batch-first, shared by all methods: the losses
    draw nothing, so a test can pin every number. ``D = h * A``.

    next_noise (B, D): start noise at ``s'`` (the bootstrap).  policy_noise (B, D): start noise at ``s``.
    depth (B,): RQL's reversal depths (A2').  bc_noise (B, D), bc_time (B, 1): ``x0`` and ``t`` of (A5)'s path.
    """

    next_noise: torch.Tensor
    policy_noise: torch.Tensor
    depth: torch.Tensor
    bc_noise: torch.Tensor
    bc_time: torch.Tensor

    def rows(self, index: slice) -> Draws:
        """The draws of rows ``index`` (a rank's share of a global batch's draws)."""
        return Draws(**{name: value[index] for name, value in vars(self).items()})

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
