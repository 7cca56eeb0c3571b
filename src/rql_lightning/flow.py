"""The flow policy: one velocity network, both directions of its Euler flow (``docs/algorithm.md`` (A1), (A2)):
``sample`` from noise to an action chunk, ``reverse`` from a dataset chunk back to RQL's virtual states."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rql_lightning.nets import MLP


class FlowPolicy(nn.Module):
    """Velocity field ``v(s, x, f)`` over flattened action chunks ``x`` of dim ``D = h * A``."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        chunk_size: int,
        hidden_dims: Sequence[int],
        flow_steps: int,
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.chunk_size = chunk_size
        self.flow_steps = flow_steps
        self.chunk_dim = chunk_size * action_dim
        self.velocity_net = MLP(obs_dim + self.chunk_dim + 1, hidden_dims, self.chunk_dim)

    def velocity(self, obs: torch.Tensor, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``obs (B, O)``, ``x (B, D)``, ``f (B, 1)`` -> velocity ``(B, D)``."""
        return self.velocity_net(torch.cat([obs, x, f], dim=-1))

    def sample(self, obs: torch.Tensor, noise: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Forward Euler from ``x_0 = noise (B, D)``: ``x <- x + v(s, x, k/F) / F``; clip to [-1, 1]."""
        x = noise
        steps = self.flow_steps
        for k in range(steps):
            f = torch.full_like(x[:, :1], k / steps)
            x = x + self.velocity(obs, x, f) / steps
        return x.clamp(-1.0, 1.0) if clip else x

    def euler(
        self, obs: torch.Tensor, x: torch.Tensor, f: torch.Tensor, step: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``F`` Euler steps of size ``step (B, 1)`` (negative: backward) from ``x (B, D)`` at flow time ``f (B, 1)``:
        ``(x, f)``, ``f`` as a running float32 sum."""
        for _ in range(self.flow_steps):
            x = x + self.velocity(obs, x, f) * step
            f = f + step
        return x, f

    def reverse(self, obs: torch.Tensor, chunk: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A2): ``F`` backward Euler steps of size ``d / F`` from ``chunk (B, D)`` at ``f = 1``, depth ``d (B,)``.
        Returns ``(x_f (B, D), f (B, 1))``, ``f = 1 - d``."""
        step = (depth / self.flow_steps).unsqueeze(-1)
        return self.euler(obs, chunk, torch.ones_like(step), -step)  # x + v * (-s) is x - v * s exactly (IEEE)

    def split_chunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, h * A) -> (B, h, A)``: the actions to execute open-loop, in order."""
        return x.reshape(x.shape[0], self.chunk_size, self.action_dim)
