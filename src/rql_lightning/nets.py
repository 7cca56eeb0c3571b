"""Networks of the reference: a GELU MLP (the flow actor) and a batched critic ensemble.

Weights are stored ``(in, out)`` like the reference's, so parameters map one to one; the ensemble stacks its
``K`` members' as ``(K, in, out)``, so one batched matmul per layer evaluates every member.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """GELU(tanh) MLP with a linear output; ``members`` (:class:`EnsembleMLP`'s ``K``) stacks the weights.
    ``forward(x, detach_params=True)`` cuts the weights from autograd: the actor's Q term uses it on the critic so
    its gradient reaches the actor only."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, *members: int) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
            limit = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform (fan_avg), the reference's init
            self.weights.append(nn.Parameter(torch.empty(*members, fan_in, fan_out).uniform_(-limit, limit)))
            self.biases.append(nn.Parameter(torch.zeros(*members, fan_out)))
        self.ln_scales, self.ln_biases = nn.ParameterList(), nn.ParameterList()  # EnsembleMLP's LayerNorm

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """``x (B, in) -> (B, out)``; with members, ``x (B, in)`` (shared) or ``(K, B, in)`` -> ``(K, B, out)``."""
        lists = (self.weights, self.biases, self.ln_scales, self.ln_biases)
        weights, biases, scales, shifts = ([t.detach() if detach_params else t for t in ts] for ts in lists)
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            b = b.unsqueeze(1) if w.dim() == 3 else b  # a member's bias (1, out) against its (B, out)
            # (B, in) @ (K, in, out) broadcasts to (K, B, out); equal ranks use one fused addmm / baddbmm.
            x = (torch.addmm if w.dim() == 2 else torch.baddbmm)(b, x, w) if x.dim() == w.dim() else x @ w + b
            if i < len(weights) - 1:
                x = F.gelu(x, approximate="tanh")
                if scales:  # eps: the reference's (flax default)
                    x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
                    x = torch.addcmul(shifts[i].unsqueeze(1), x, scales[i].unsqueeze(1))
        return x


class EnsembleMLP(MLP):
    """``K`` independent MLPs evaluated together, ``(B, in) -> (K, B, out)``, with optional LayerNorm after each
    hidden activation (``ln_scales``/``ln_biases (K, out)``)."""

    def __init__(
        self, num_members: int, in_dim: int, hidden_dims: Sequence[int], out_dim: int = 1, layer_norm: bool = True
    ) -> None:
        super().__init__(in_dim, hidden_dims, out_dim, num_members)
        for d in hidden_dims if layer_norm else []:
            self.ln_scales.append(nn.Parameter(torch.ones(num_members, d)))
            self.ln_biases.append(nn.Parameter(torch.zeros(num_members, d)))
