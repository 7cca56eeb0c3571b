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

LAYER_NORM_EPS = 1e-6  # the reference's LayerNorm epsilon (flax default)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    """GELU(tanh) MLP with a linear output; ``members`` (:class:`EnsembleMLP`'s ``K``) stacks the weights."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, *members: int) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
            limit = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform (fan_avg), the reference's init
            self.weights.append(nn.Parameter(torch.empty(*members, fan_in, fan_out).uniform_(-limit, limit)))
            self.biases.append(nn.Parameter(torch.zeros(*members, fan_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.addmm(b, x, w) if x.dim() == 2 else x @ w + b
            if i < last:
                x = _gelu(x)
        return x


class EnsembleMLP(MLP):
    """``K`` independent MLPs evaluated together, ``(B, in) -> (K, B, out)``, with optional LayerNorm after each
    hidden activation (``ln_scales``/``ln_biases (K, out)``). ``forward(x, detach_params=True)`` cuts the weights
    from autograd: the actor's Q term uses it so its gradient reaches the actor only."""

    def __init__(
        self, num_members: int, in_dim: int, hidden_dims: Sequence[int], out_dim: int = 1, layer_norm: bool = True
    ) -> None:
        super().__init__(in_dim, hidden_dims, out_dim, num_members)
        dims = hidden_dims if layer_norm else []
        self.ln_scales = nn.ParameterList([nn.Parameter(torch.ones(num_members, d)) for d in dims])
        self.ln_biases = nn.ParameterList([nn.Parameter(torch.zeros(num_members, d)) for d in dims])

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """``x``: ``(B, in)`` shared by all members, or ``(K, B, in)``. Returns ``(K, B, out)``."""

        def p(t: torch.Tensor) -> torch.Tensor:
            return t.detach() if detach_params else t

        last = len(self.weights) - 1
        for i in range(last + 1):
            w, b = p(self.weights[i]), p(self.biases[i])
            # (B, in) @ (K, in, out) broadcasts to (K, B, out); (K, B, in) uses baddbmm.
            x = torch.baddbmm(b.unsqueeze(1), x, w) if x.dim() == 3 else torch.matmul(x, w) + b.unsqueeze(1)
            if i < last:
                x = _gelu(x)
                if len(self.ln_scales):
                    x = F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS)
                    x = torch.addcmul(p(self.ln_biases[i]).unsqueeze(1), x, p(self.ln_scales[i]).unsqueeze(1))
        return x
