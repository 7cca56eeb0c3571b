"""Handcrafted policies and critics with known velocity / value, for the diagnostics' and controls' tests."""

from __future__ import annotations

import torch
from torch import nn

from rql_lightning.flow import FlowPolicy


class KnownFlow(FlowPolicy):
    """A FlowPolicy whose velocity is ``fn(obs, x, f)`` instead of the network."""

    def __init__(self, fn, flow_steps: int, obs_dim: int = 2, dim: int = 3) -> None:
        super().__init__(obs_dim=obs_dim, action_dim=dim, chunk_size=1, hidden_dims=[8], flow_steps=flow_steps)
        self.fn = fn

    def velocity(self, obs: torch.Tensor, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.fn(obs, x, f)


class LinearCritic(nn.Module):
    """``K`` identical members ``Q(s, x, f) = sum(x) + w f``, called like an :class:`EnsembleMLP`."""

    def __init__(self, obs_dim: int, w: float, members: int = 2) -> None:
        super().__init__()
        self.obs_dim, self.w, self.members = obs_dim, w, members

    def forward(self, inputs: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        x, f = inputs[:, self.obs_dim : -1], inputs[:, -1:]
        q = x.sum(-1, keepdim=True) + self.w * f  # (B, 1)
        return q.unsqueeze(0).expand(self.members, -1, -1)
