"""Networks of the reference: a GELU MLP (the flow actor) and a batched critic ensemble.

The ensemble keeps its ``K`` members as stacked ``(K, in, out)`` weight tensors, so one
batched matmul per layer evaluates every member: no Python loop over members.
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


def glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Glorot-uniform (variance scaling 1, fan_avg) in place; works for stacked weights too."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


class MLP(nn.Module):
    """GELU(tanh) MLP; optional LayerNorm *after* each hidden activation; linear output.

    Weights are stored ``(in, out)`` like the reference so parameters map one to one.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        layer_norm: bool = False,
        layer_norm_eps: float = LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
            self.weights.append(nn.Parameter(glorot_uniform_(torch.empty(fan_in, fan_out), fan_in, fan_out)))
            self.biases.append(nn.Parameter(torch.zeros(fan_out)))
        self.layer_norms = nn.ModuleList(
            [nn.LayerNorm(d, eps=layer_norm_eps) for d in hidden_dims] if layer_norm else []
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.addmm(b, x, w) if x.dim() == 2 else x @ w + b
            if i < last:
                x = _gelu(x)
                if self.layer_norms:
                    x = self.layer_norms[i](x)
        return x


class EnsembleMLP(nn.Module):
    """``K`` independent MLPs evaluated together: ``(B, in) -> (K, B, out)``.

    Layer ``i`` holds ``weight (K, in, out)``, ``bias (K, out)`` and, for hidden layers with
    LayerNorm, ``ln_scale``/``ln_bias (K, out)``. ``forward(x, detach_params=True)`` evaluates
    the members with their weights cut from autograd: the actor's Q term uses it so its
    gradient reaches the actor only.
    """

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int = 1,
        layer_norm: bool = True,
        layer_norm_eps: float = LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        self.num_members = num_members
        self.layer_norm_eps = layer_norm_eps
        dims = [in_dim, *hidden_dims, out_dim]
        k = num_members
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
            w = glorot_uniform_(torch.empty(k, fan_in, fan_out), fan_in, fan_out)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(k, fan_out)))
        self.ln_scales = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        if layer_norm:
            for d in hidden_dims:
                self.ln_scales.append(nn.Parameter(torch.ones(k, d)))
                self.ln_biases.append(nn.Parameter(torch.zeros(k, d)))

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
                    x = F.layer_norm(x, x.shape[-1:], eps=self.layer_norm_eps)
                    x = torch.addcmul(p(self.ln_biases[i]).unsqueeze(1), x, p(self.ln_scales[i]).unsqueeze(1))
        return x
